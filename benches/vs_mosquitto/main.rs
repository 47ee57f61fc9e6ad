//! shardmq against Mosquitto, under the same load from the same generator:
//!
//! ```text
//! cargo bench --bench vs_mosquitto                      # everything: 3 runs x 10 s per scenario and broker
//! cargo bench --bench vs_mosquitto -- --quick --scenario pairs-4-qos1
//! ```
//!
//! Flags after `--`: `--scenario NAME` (repeatable; a prefix selects several, e.g. `pairs`),
//! `--runs N` (3), `--duration SECS` (10, measured after a 2 s warm-up), `--warmup SECS`,
//! `--threads N` (shardmq worker threads, 2), `--broker shardmq|mosquitto` (one broker only),
//! `--gen-threads N` (generator threads: half the cores,
//! 1 to 4), `--quick` (duration 2 s, 1 run), `--no-mosquitto`, `--json PATH`
//! (`target/bench/vs_mosquitto.json`), `--list`.
//!
//! Cargo builds the release `shardmq` binary for this bench and names it in `CARGO_BIN_EXE_shardmq`
//! (override with `SHARDMQ_BIN`); Mosquitto is `/usr/sbin/mosquitto` or `mosquitto` on the PATH
//! (override with `MOSQUITTO_BIN`). Every broker runs fresh per run, on a loopback port, with a
//! generated config in `target/bench/tmp-PID/`. Modules: `gen` (the mio load generator), `wire`
//! (its MQTT packets), `scenarios`, `broker` (processes), `report` (table and JSON), `sys` (OS
//! facts).

mod broker;
mod gen;
mod report;
mod scenarios;
mod sys;
mod wire;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker::{Accounts, Kind, Setup};
use scenarios::{Opts, Scenario};

struct Args {
    filters: Vec<String>,
    opts: Opts,
    json: Option<PathBuf>,
    no_mosquitto: bool,
    /// `--broker mosquitto`: Mosquitto alone.
    only_mosquitto: bool,
    list: bool,
}

const USAGE: &str = "usage: cargo bench --bench vs_mosquitto -- [--scenario NAME]... [--runs N] \
[--duration SECS] [--warmup SECS] [--threads N] [--broker shardmq|mosquitto] [--gen-threads N] [--quick] [--no-mosquitto] \
[--json PATH] [--list]";

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        filters: Vec::new(),
        opts: Opts {
            runs: 3,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            threads: 2,
            gen_threads: (sys::cores() / 2).clamp(1, 4),
        },
        json: None,
        no_mosquitto: false,
        only_mosquitto: false,
        list: false,
    };
    let mut bench = false;
    let mut quick = false;
    let (mut runs, mut duration) = (None, None);
    let mut it = std::env::args().skip(1);
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        v.as_deref()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{flag} needs a valid value"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => bench = true,
            "--scenario" => a.filters.push(value(&arg, it.next())?),
            "--runs" => runs = Some(value::<usize>(&arg, it.next())?.max(1)),
            "--duration" => {
                duration = Some(Duration::from_secs_f64(
                    value::<f64>(&arg, it.next())?.max(0.1),
                ))
            }
            "--warmup" => {
                a.opts.warmup = Duration::from_secs_f64(value::<f64>(&arg, it.next())?.max(0.0))
            }
            "--threads" => a.opts.threads = value::<usize>(&arg, it.next())?.max(1),
            "--gen-threads" => a.opts.gen_threads = value::<usize>(&arg, it.next())?.max(1),
            "--quick" => quick = true,
            "--no-mosquitto" => a.no_mosquitto = true,
            "--broker" => match value::<String>(&arg, it.next())?.as_str() {
                "shardmq" => a.no_mosquitto = true,
                "mosquitto" => a.only_mosquitto = true,
                other => {
                    return Err(format!(
                        "--broker: `{other}` is neither shardmq nor mosquitto"
                    ))
                }
            },
            "--json" => a.json = Some(PathBuf::from(value::<String>(&arg, it.next())?)),
            "--list" => a.list = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if !bench && !a.list {
        // `cargo test --benches` runs bench targets without `--bench`: this one is too long for that.
        println!(
            "vs_mosquitto: a load test; run it with `cargo bench --bench vs_mosquitto` (skipped)"
        );
        return Ok(None);
    }
    if a.only_mosquitto && a.no_mosquitto {
        return Err("--broker mosquitto with --broker shardmq or --no-mosquitto".into());
    }
    if quick {
        a.opts.runs = 1;
        a.opts.duration = Duration::from_secs(2);
    }
    if let Some(r) = runs {
        a.opts.runs = r;
    }
    if let Some(d) = duration {
        a.opts.duration = d;
    }
    Ok(Some(a))
}

/// `target/` of this build: the bench executable is `target/<profile>/deps/vs_mosquitto-HASH`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn find_mosquitto() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOSQUITTO_BIN") {
        return Some(PathBuf::from(p));
    }
    let fixed = Path::new("/usr/sbin/mosquitto");
    if fixed.exists() {
        return Some(fixed.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("mosquitto"))
            .find(|p| p.exists())
    })
}

fn accounts(workdir: &Path, mosquitto: bool) -> Result<Accounts, String> {
    let users: Vec<(String, String)> = (0..scenarios::LOGIN_USERS)
        .map(|i| (format!("user{i}@bench.example"), format!("secret-{i}")))
        .collect();
    let bcrypt = users
        .iter()
        .map(|(_, p)| bcrypt::hash(p, 10).map_err(|e| format!("bcrypt: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mosquitto_file = if mosquitto {
        let f = workdir.join("mosquitto.passwd");
        broker::mosquitto_passwd(&f, &users)?;
        Some(f)
    } else {
        None
    };
    Ok(Accounts {
        users,
        bcrypt,
        mosquitto_file,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vs_mosquitto: {e}");
            return ExitCode::from(2);
        }
    };
    let all = scenarios::all();
    if args.list {
        for s in &all {
            println!("{:<16} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<Scenario> = all
        .into_iter()
        .filter(|s| {
            args.filters.is_empty() || args.filters.iter().any(|f| s.name.starts_with(f.as_str()))
        })
        .collect();
    if selected.is_empty() {
        eprintln!(
            "vs_mosquitto: no scenario matches {:?} (see --list)",
            args.filters
        );
        return ExitCode::from(2);
    }
    match run(&args, selected) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vs_mosquitto: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, selected: Vec<Scenario>) -> Result<(), String> {
    let target = target_dir();
    let shardmq_bin = std::env::var_os("SHARDMQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shardmq")));
    if !shardmq_bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` or set SHARDMQ_BIN",
            shardmq_bin.display()
        ));
    }
    let mosquitto_bin = if args.no_mosquitto {
        None
    } else {
        find_mosquitto()
    };
    let mut notes = vec![
        "every run starts a fresh broker; QoS 1/2 publishers keep at most 64 messages unacknowledged".to_string(),
        format!(
            "both brokers: max in-flight {} per subscriber, max queued {} per session, TCP_NODELAY",
            broker::MAX_INFLIGHT,
            broker::MAX_QUEUED
        ),
    ];
    if mosquitto_bin.is_none() {
        if !args.no_mosquitto {
            eprintln!(
                "vs_mosquitto: Mosquitto not found (apt-get install -y mosquitto): shardmq only"
            );
        }
        notes.push("Mosquitto not run".into());
    }
    if selected
        .iter()
        .any(|s| matches!(s.kind, scenarios::Kind::Login { .. }))
    {
        notes.push(
            "login: shardmq's accounts are bcrypt (cost 10); in `login` it remembers verified logins \
             (auth.cache_secs, the default), so only each account's first login (in the warm-up) costs \
             bcrypt; `login-uncached` checks bcrypt on every login. Mosquitto checks its own \
             sha512-pbkdf2 hashes (mosquitto_passwd), which are far cheaper, and caches nothing"
                .into(),
        );
    }
    let nofile = sys::raise_nofile(65_536)?;
    if nofile < 12_000
        && selected
            .iter()
            .any(|s| matches!(s.kind, scenarios::Kind::Connections { .. }))
    {
        eprintln!(
            "vs_mosquitto: open-file limit is {nofile}: the 10k-connection scenario will fail"
        );
    }

    let workdir = target
        .join("bench")
        .join(format!("tmp-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    let result = run_all(
        args,
        &selected,
        &shardmq_bin,
        mosquitto_bin.as_deref(),
        &workdir,
        notes,
        nofile,
    );
    if std::env::var_os("VS_MOSQUITTO_KEEP").is_some() {
        eprintln!(
            "vs_mosquitto: configs and broker logs kept in {}",
            workdir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    let (text, json) = result?;
    println!("\n{text}");
    let path = args
        .json
        .clone()
        .unwrap_or_else(|| target.join("bench").join("vs_mosquitto.json"));
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("JSON: {}", path.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_all(
    args: &Args,
    selected: &[Scenario],
    shardmq_bin: &Path,
    mosquitto_bin: Option<&Path>,
    workdir: &Path,
    notes: Vec<String>,
    nofile: u64,
) -> Result<(String, String), String> {
    let opts = &args.opts;
    let setup = Setup {
        shardmq_bin,
        mosquitto_bin,
        threads: opts.threads,
        workdir,
    };
    let accounts = if selected
        .iter()
        .any(|s| matches!(s.kind, scenarios::Kind::Login { .. }))
    {
        eprintln!(
            "vs_mosquitto: hashing {} passwords (bcrypt cost 10)",
            scenarios::LOGIN_USERS
        );
        Some(accounts(workdir, mosquitto_bin.is_some())?)
    } else {
        None
    };
    let mut brokers = vec![Kind::Shardmq];
    if mosquitto_bin.is_some() {
        brokers.push(Kind::Mosquitto);
    }
    if args.only_mosquitto {
        brokers.retain(|&b| b == Kind::Mosquitto);
        if brokers.is_empty() {
            return Err("--broker mosquitto: Mosquitto is not installed".into());
        }
    }
    let total = selected.len() * opts.runs * brokers.len();
    eprintln!(
        "vs_mosquitto: {} scenario(s) x {} run(s) x {} broker(s), {:?} each after {:?} warm-up; \
         shardmq --threads {}, {} generator thread(s), open-file limit {nofile}",
        selected.len(),
        opts.runs,
        brokers.len(),
        opts.duration,
        opts.warmup,
        opts.threads,
        opts.gen_threads
    );
    let mut results = Vec::new();
    let mut k = 0;
    for scn in selected {
        for run in 0..opts.runs {
            // Alternate which broker goes first, so neither always runs on a warmer machine.
            let mut order = brokers.clone();
            if run % 2 == 1 {
                order.reverse();
            }
            for &b in &order {
                k += 1;
                eprintln!(
                    "[{k}/{total}] {} on {} (run {}/{})",
                    scn.name,
                    b.name(),
                    run + 1,
                    opts.runs
                );
                let r = scenarios::run_one(scn, b, &setup, accounts.as_ref(), opts, run);
                eprintln!("    {}", r.summary());
                results.push(r);
            }
        }
    }
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let meta = report::Meta {
        date_utc: sys::utc(unix_time),
        unix_time,
        machine: sys::machine(),
        shardmq_version: broker::version_line(shardmq_bin, "--version"),
        mosquitto_version: mosquitto_bin.map(|m| broker::version_line(m, "-h")),
        runs: opts.runs,
        duration_s: opts.duration.as_secs_f64(),
        warmup_s: opts.warmup.as_secs_f64(),
        threads: opts.threads,
        gen_threads: opts.gen_threads,
        notes,
    };
    let rows = report::rows(selected, &results);
    let mut text = format!(
        "{} | {} | {} | {} | shardmq --threads {} | {} generator thread(s) | {} run(s) x {:?}\n\n",
        meta.date_utc,
        meta.machine,
        meta.shardmq_version,
        meta.mosquitto_version.as_deref().unwrap_or("no Mosquitto"),
        opts.threads,
        opts.gen_threads,
        opts.runs,
        opts.duration
    );
    text.push_str(&report::table(&rows));
    let json = report::json(&meta, selected, &rows, &results);
    Ok((text, json))
}
