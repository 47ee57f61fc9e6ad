//! Broker processes: a fresh shardmq (the release binary cargo built for this bench) or Mosquitto per
//! run, on a loopback port, with a generated config file, logs to a file, killed at the end. The
//! brokers inherit the bench's raised RLIMIT_NOFILE.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys;

const START_TIMEOUT: Duration = Duration::from_secs(10);
/// MQTT in-flight window towards each subscriber, the same for both brokers.
pub const MAX_INFLIGHT: usize = 32;
/// Queue per session, the same for both brokers: large, so QoS 1/2 runs measure speed, not drops.
pub const MAX_QUEUED: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shardmq,
    Mosquitto,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shardmq => "shardmq",
            Kind::Mosquitto => "mosquitto",
        }
    }
}

/// Accounts for the login scenario: the same names and passwords in both brokers' formats.
pub struct Accounts {
    pub users: Vec<(String, String)>,
    /// bcrypt hashes (cost 10) for shardmq's `auth.users`.
    pub bcrypt: Vec<String>,
    /// A mosquitto_passwd file (sha512-pbkdf2), if Mosquitto is used.
    pub mosquitto_file: Option<PathBuf>,
}

pub struct Setup<'a> {
    pub shardmq_bin: &'a Path,
    pub mosquitto_bin: Option<&'a Path>,
    pub threads: usize,
    pub workdir: &'a Path,
}

pub struct Broker {
    pub kind: Kind,
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Broker {
    /// `login_cache`: shardmq's `auth.cache_secs` at its default (else 0); Mosquitto has no such cache.
    pub fn start(
        kind: Kind,
        setup: &Setup<'_>,
        auth: Option<&Accounts>,
        login_cache: bool,
    ) -> Result<Broker, String> {
        match kind {
            Kind::Shardmq => start_shardmq(setup, auth, login_cache),
            Kind::Mosquitto => {
                // The port is picked by binding port 0 and releasing it; another process may take it
                // meanwhile, so try a few.
                let mut last = String::new();
                for _ in 0..3 {
                    match start_mosquitto(setup, auth) {
                        Ok(b) => return Ok(b),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    pub fn rss_kib(&self) -> Option<u64> {
        sys::rss_kib(self.pid)
    }

    pub fn cpu(&self) -> Duration {
        sys::cpu_of(self.pid).unwrap_or_default()
    }

    pub fn nofile(&self) -> Option<u64> {
        sys::nofile_of(self.pid)
    }

    /// `Err` with the exit status and the end of the log if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log tail: {}",
                self.kind.name(),
                log_tail(&self.log)
            )),
            Err(e) => Err(format!("cannot query {}: {e}", self.kind.name())),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail.join(" | ")
    }
}

fn start_shardmq(
    setup: &Setup<'_>,
    auth: Option<&Accounts>,
    login_cache: bool,
) -> Result<Broker, String> {
    let mut users = String::new();
    if let Some(a) = auth {
        for ((name, _), hash) in a.users.iter().zip(&a.bcrypt) {
            users.push_str(&format!(
                "            (username: {name:?}, password_hash: {hash:?}),\n"
            ));
        }
    }
    let config = format!(
        "(\n    listen: \"127.0.0.1:0\",\n    threads: {threads},\n    log_level: \"warn\",\n    \
         auth: (\n        allow_anonymous: {anon},\n        cache_secs: {cache},\n        users: [\n{users}        ],\n    ),\n    \
         limits: (\n        max_inflight: {MAX_INFLIGHT},\n        max_queued_messages: {MAX_QUEUED},\n    ),\n    \
         admin: (enabled: false),\n)\n",
        threads = setup.threads,
        anon = auth.is_none(),
        cache = if login_cache { 300 } else { 0 },
    );
    let path = setup.workdir.join("shardmq.ron");
    std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
    let log = setup.workdir.join("shardmq.log");
    let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(setup.shardmq_bin)
        .arg("--config")
        .arg(&path)
        .arg("--threads")
        .arg(setup.threads.to_string())
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", setup.shardmq_bin.display()))?;
    let pid = child.id();
    // Read the "listening on ADDR" line on a helper thread so the wait is bounded.
    let stdout = child.stdout.take();
    let (tx, rx) = crossbeam_channel::bounded::<String>(1);
    std::thread::spawn(move || {
        let Some(out) = stdout else { return };
        let mut first = true;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if first {
                let _ = tx.send(line);
                first = false;
            }
        }
    });
    let mut broker = Broker {
        kind: Kind::Shardmq,
        child,
        pid,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log,
    };
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(l) => l,
        Err(_) => {
            let why = broker
                .check_alive()
                .err()
                .unwrap_or_else(|| "no \"listening on\" line within 10 s".into());
            return Err(format!("shardmq did not start: {why}"));
        }
    };
    let addr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .ok_or_else(|| format!("unexpected first line from shardmq: {line:?}"))?;
    broker.addr = addr;
    Ok(broker)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

fn start_mosquitto(setup: &Setup<'_>, auth: Option<&Accounts>) -> Result<Broker, String> {
    let bin = setup.mosquitto_bin.ok_or("Mosquitto is not installed")?;
    let port = free_port()?;
    let mut config = format!(
        "listener {port} 127.0.0.1\nset_tcp_nodelay true\nmax_inflight_messages {MAX_INFLIGHT}\n\
         max_queued_messages {MAX_QUEUED}\npersistence false\nuser root\nlog_dest stderr\n\
         log_type error\nlog_type warning\nconnection_messages false\n"
    );
    match auth {
        None => config.push_str("allow_anonymous true\n"),
        Some(a) => {
            let file = a
                .mosquitto_file
                .as_ref()
                .ok_or("no Mosquitto password file")?;
            config.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                file.display()
            ));
        }
    }
    // Debugging aid, e.g. VS_MOSQUITTO_CONF_EXTRA='log_type all' (with VS_MOSQUITTO_KEEP=1 to keep the log).
    if let Ok(extra) = std::env::var("VS_MOSQUITTO_CONF_EXTRA") {
        config.push_str(&extra.replace("\\n", "\n"));
        config.push('\n');
    }
    let path = setup.workdir.join("mosquitto.conf");
    std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
    let log = setup.workdir.join("mosquitto.log");
    let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut broker = Broker {
        kind: Kind::Mosquitto,
        child,
        pid,
        addr,
        log,
    };
    let start = Instant::now();
    loop {
        broker
            .check_alive()
            .map_err(|e| format!("Mosquitto did not start: {e}"))?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(broker);
        }
        if start.elapsed() > START_TIMEOUT {
            return Err("Mosquitto did not accept connections within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes the Mosquitto password file for `users` with `mosquitto_passwd -b`.
pub fn mosquitto_passwd(file: &Path, users: &[(String, String)]) -> Result<(), String> {
    let _ = std::fs::remove_file(file);
    for (i, (u, p)) in users.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd
            .arg("-b")
            .arg(file)
            .arg(u)
            .arg(p)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("mosquitto_passwd: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mosquitto_passwd failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The first line of `prog ARG` (stdout or stderr), e.g. a version banner.
pub fn version_line(prog: &Path, arg: &str) -> String {
    match Command::new(prog).arg(arg).stdin(Stdio::null()).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("unknown ({e})"),
    }
}
