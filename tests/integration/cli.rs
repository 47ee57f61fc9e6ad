//! The `shardmq` binary as a user runs it: the bundled config, configuration and flag errors (named,
//! with the line, exit status 2), `shardmq passwd`, and flags that override the file.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crossbeam_channel::Receiver;
use rumqttc::QoS;

/// Bound for a child to start listening or to exit (a debug build computing a cost-10 bcrypt hash at
/// start on a loaded machine); only reached when a test fails.
const PROC_WAIT: Duration = Duration::from_secs(30);

/// A running `shardmq`, killed on drop (also when the test fails), with its output read line by line.
struct Proc {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    seen_stderr: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs the binary in `cwd` (never the repository, whose config.ron would be picked up).
fn spawn(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shardmq binary starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A process that refuses its arguments exits without reading: a broken pipe is fine.
        let _ = pipe.write_all(input.as_bytes());
    }
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    Proc {
        child,
        stdout,
        stderr,
        seen_stderr: Vec::new(),
    }
}

impl Proc {
    /// Waits for the "listening on ADDR" line and returns the address.
    fn listening(&mut self) -> SocketAddr {
        let prefix = format!("shardmq {} listening on ", env!("CARGO_PKG_VERSION"));
        let deadline = Instant::now() + PROC_WAIT;
        loop {
            match self.stdout.recv_deadline(deadline) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(&prefix) {
                        return addr
                            .trim()
                            .parse()
                            .expect("an address after `listening on`");
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    let err: Vec<String> = self.stderr.try_iter().collect();
                    panic!("no `listening on` line (exit status {status:?}); stderr: {err:#?}");
                }
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn stderr_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen_stderr.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + PROC_WAIT;
        loop {
            match self.stderr.recv_deadline(deadline) {
                Ok(line) => {
                    self.seen_stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with `{needle}`; seen: {:#?}",
                    self.seen_stderr
                ),
            }
        }
    }

    /// Waits (bounded) for the process to exit by itself; returns the status, stdout and stderr.
    fn exit(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + PROC_WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "shardmq did not exit by itself; stderr so far: {:?}",
                self.stderr.try_iter().collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // The pipes close with the process: read to the end.
        let collect = |rx: &Receiver<String>| {
            let mut out = String::new();
            while let Ok(l) = rx.recv_deadline(deadline) {
                out.push_str(&l);
                out.push('\n');
            }
            out
        };
        let stdout = collect(&self.stdout);
        let mut stderr = self.seen_stderr.join("\n");
        stderr.push_str(&collect(&self.stderr));
        (status, stdout, stderr)
    }
}

/// A temp dir holding a copy of the bundled config.ron (its state file path is relative to it).
fn bundled_config() -> TempDir {
    let dir = TempDir::new("cli");
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.ron");
    std::fs::copy(bundled, dir.path().join("config.ron")).unwrap();
    dir
}

fn round_trip(addr: SocketAddr, tag: &str) {
    let sub = TestClient::connect_to(addr, &format!("{tag}-sub"));
    sub.subscribe("sensors/#", QoS::AtLeastOnce);
    let p = TestClient::connect_to(addr, &format!("{tag}-pub"));
    p.publish("sensors/cli/temp", QoS::AtLeastOnce, false, "21.5");
    let got = sub.next_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("sensors/cli/temp", &b"21.5"[..])
    );
}

#[test]
fn the_binary_serves_with_the_bundled_config() {
    let dir = bundled_config();
    let config = dir.path().join("config.ron");
    let mut proc = spawn(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ],
        None,
    );
    let addr = proc.listening();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    round_trip(addr, "cli-bundled");
    assert!(proc.child.try_wait().unwrap().is_none(), "still serving");
}

#[test]
fn the_config_in_the_working_directory_is_used_without_config() {
    let dir = bundled_config();
    // Found as ./config.ron; the port comes from the flag.
    let mut proc = spawn(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--log-level", "info"],
        None,
    );
    let addr = proc.listening();
    proc.stderr_line("configuration from config.ron");
    round_trip(addr, "cli-cwd");
}

#[test]
fn threads_flag_is_honoured() {
    let dir = bundled_config();
    let mut proc = spawn(
        dir.path(),
        &[
            "--config",
            "config.ron",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--log-level",
            "info",
        ],
        None,
    );
    let addr = proc.listening();
    let line = proc.stderr_line("worker threads");
    assert!(
        line.contains(&format!(
            "shardmq listening on {addr} with 2 worker threads"
        )),
        "{line}"
    );
    round_trip(addr, "cli-threads");
}

/// Writes `text` as config.ron in a fresh dir and runs the binary on it; it must exit by itself with 2.
fn run_bad_config(text: &str) -> String {
    let dir = TempDir::new("cli-bad");
    std::fs::write(dir.path().join("config.ron"), text).unwrap();
    let proc = spawn(
        dir.path(),
        &["--config", "config.ron", "--listen", "127.0.0.1:0"],
        None,
    );
    let (status, stdout, stderr) = proc.exit();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(!stdout.contains("listening"), "it must not start: {stdout}");
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    stderr
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let stderr =
        run_bad_config("(\n    listen: \"127.0.0.1:1883\",\n    lisen: \"127.0.0.1:1884\",\n)\n");
    assert!(stderr.contains("config.ron:3:"), "line 3: {stderr}");
    assert!(stderr.contains("lisen"), "{stderr}");
    // Inside a nested section too.
    let stderr = run_bad_config(
        "(\n  auth: (\n    allow_anonymous: true,\n    alow_anonymous: false,\n  ),\n)\n",
    );
    assert!(stderr.contains("config.ron:4:"), "line 4: {stderr}");
    assert!(stderr.contains("alow_anonymous"), "{stderr}");
}

#[test]
fn a_bad_address_is_named_with_its_line() {
    let dir = TempDir::new("cli-bad-addr");
    std::fs::write(
        dir.path().join("config.ron"),
        "(\n  threads: 1,\n\n  listen: \"nowhere\",\n)\n",
    )
    .unwrap();
    // Without --listen, so the file's value is the one checked.
    let (status, _, stderr) = spawn(dir.path(), &["--config", "config.ron"], None).exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config.ron:4:"), "line 4: {stderr}");
    assert!(stderr.contains("field `listen`"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
}

#[test]
fn an_invalid_topic_pattern_is_named_with_its_line() {
    let stderr = run_bad_config(
        "(\n  topics: (\n    enforce: true,\n    list: [\"ok/+\", \"a/#/b\"],\n  ),\n)\n",
    );
    assert!(stderr.contains("config.ron:4:"), "line 4: {stderr}");
    assert!(stderr.contains("field `list`"), "{stderr}");
    assert!(stderr.contains("a/#/b"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = TempDir::new("cli-missing");
    let (status, _, stderr) = spawn(dir.path(), &["--config", "nope.ron"], None).exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope.ron"), "{stderr}");
}

#[test]
fn bad_flags_are_refused() {
    let dir = TempDir::new("cli-flags");
    let run = |args: &[&str]| spawn(dir.path(), args, None).exit();

    let (status, _, stderr) = run(&["--threads", "0", "--listen", "127.0.0.1:0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--threads"), "{stderr}");

    let (status, _, stderr) = run(&["--log-level", "loud", "--listen", "127.0.0.1:0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--log-level") && stderr.contains("loud"),
        "{stderr}"
    );

    let (status, _, stderr) = run(&["--listen", "nowhere"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--listen") && stderr.contains("nowhere"),
        "{stderr}"
    );

    // Not a number: clap refuses it before anything starts.
    let (status, stdout, stderr) = run(&["--threads", "abc", "--listen", "127.0.0.1:0"]);
    assert!(!status.success());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--threads") && stderr.contains("abc"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening"));
}

fn passwd(dir: &Path, file: &str, user: &str, password: &str) -> (ExitStatus, String) {
    let (status, _, stderr) = spawn(
        dir,
        &["passwd", file, user, "--cost", "4"],
        Some(&format!("{password}\n")),
    )
    .exit();
    (status, stderr)
}

fn hash_of(file: &Path, user: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let prefix = format!("{user}:");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "one line for {user} in {text:?}");
    let hash = &lines[0][prefix.len()..];
    assert!(
        hash.starts_with("$2b$04$") && hash.len() == 60,
        "a cost-4 bcrypt hash: {hash}"
    );
    hash.to_string()
}

#[test]
fn passwd_writes_a_file_the_broker_accepts() {
    let dir = TempDir::new("cli-passwd");
    let file = dir.path().join("passwd");

    let (status, stderr) = passwd(dir.path(), "passwd", "ann@example.com", "first pw");
    assert!(status.success(), "{stderr}");
    let first = hash_of(&file, "ann@example.com");
    assert!(bcrypt::verify("first pw", &first).unwrap());

    let (status, stderr) = passwd(dir.path(), "passwd", "ops", "ops-pw");
    assert!(status.success(), "{stderr}");
    let (status, stderr) = passwd(dir.path(), "passwd", "ann@example.com", "second pw");
    assert!(status.success(), "{stderr}");
    let second = hash_of(&file, "ann@example.com");
    assert_ne!(first, second, "running it again changes the hash");
    assert!(bcrypt::verify("second pw", &second).unwrap());
    assert!(!bcrypt::verify("first pw", &second).unwrap());
    assert!(
        bcrypt::verify("ops-pw", &hash_of(&file, "ops")).unwrap(),
        "other users are kept"
    );

    std::fs::write(
        dir.path().join("config.ron"),
        "(\n  threads: 1,\n  auth: (allow_anonymous: false, password_file: \"passwd\", threads: 1),\n)\n",
    )
    .unwrap();
    let mut proc = spawn(
        dir.path(),
        &[
            "--config",
            "config.ron",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ],
        None,
    );
    let addr = proc.listening();
    let (_ok, code, _) = RawConnect::new("cli-ann")
        .credentials("ann@example.com", b"second pw")
        .connect(addr);
    assert_eq!(code, 0);
    let (mut old, code, _) = RawConnect::new("cli-old")
        .credentials("ann@example.com", b"first pw")
        .connect(addr);
    assert_eq!(code, 0x04);
    old.expect_closed();
    let (_ops, code, _) = RawConnect::new("cli-ops")
        .credentials("ops", b"ops-pw")
        .connect(addr);
    assert_eq!(code, 0);
    let (_anon, code, _) = RawConnect::new("cli-anon").connect(addr);
    assert_eq!(code, 0x05);
}

#[test]
fn passwd_refuses_bad_input() {
    let dir = TempDir::new("cli-passwd-bad");
    let (status, stderr) = passwd(dir.path(), "passwd", "a:b", "pw");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("':'"), "{stderr}");
    let (status, stderr) = passwd(dir.path(), "passwd", "ann", "");
    assert!(!status.success());
    assert!(stderr.contains("empty"), "{stderr}");
    assert!(!dir.path().join("passwd").exists(), "nothing written");
    let (status, _, stderr) = spawn(
        dir.path(),
        &["passwd", "passwd", "ann", "--cost", "3"],
        Some("pw\n"),
    )
    .exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cost"), "{stderr}");
}
