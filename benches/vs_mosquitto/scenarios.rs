//! The scenarios, and one run of a scenario against one (fresh) broker: connect the clients, warm up,
//! measure, drain, verify. Every wait is bounded; a broken connection, a dead broker or a lost
//! acknowledged message makes the run FAILED instead of a number.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::{Accounts, Broker, Kind as BrokerKind, Setup};
use crate::gen::{self, Role, Shared, PH_DRAIN, PH_EXIT, PH_MEASURE, PH_PUBLISH};
use crate::sys;

pub const PAYLOAD: usize = 64;
pub const LARGE_PAYLOAD: usize = 64 * 1024;
/// Unacknowledged QoS 1/2 messages per publisher.
pub const WINDOW: usize = 64;
/// Connections between `connect()` and CONNACK at once, all generator threads together.
pub const CONNECT_WINDOW: usize = 128;
pub const LOGIN_USERS: usize = 16;
pub const LOGIN_CONCURRENCY: usize = 32;
/// A broker growing past this is stopped (and the run FAILED) to protect the machine.
const RSS_CAP_KIB: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub enum Kind {
    Pairs {
        n: usize,
        qos: u8,
        payload: usize,
    },
    FanOut {
        subs: usize,
    },
    FanIn {
        pubs: usize,
    },
    Latency {
        pairs: usize,
        rate: f64,
    },
    Connections {
        n: usize,
    },
    /// `cached`: shardmq remembers verified logins (`auth.cache_secs`), as by default; otherwise every
    /// login is a full bcrypt check.
    Login {
        cached: bool,
    },
    SlowSubscriber,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub about: String,
    pub kind: Kind,
}

/// Every scenario, in the order they run.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    for n in [4, 32] {
        for qos in 0..=2 {
            v.push(Scenario {
                name: format!("pairs-{n}-qos{qos}"),
                about: format!(
                    "{n} publisher→subscriber pairs, one topic each, QoS {qos}, 64 B, publishers flat out{}",
                    if qos > 0 { " (window 64)" } else { "" }
                ),
                kind: Kind::Pairs {
                    n,
                    qos,
                    payload: PAYLOAD,
                },
            });
        }
    }
    for subs in [100, 1000] {
        v.push(Scenario {
            name: format!("fanout-{subs}"),
            about: format!("1 publisher → {subs} subscribers of one topic, QoS 0, 64 B"),
            kind: Kind::FanOut { subs },
        });
    }
    v.push(Scenario {
        name: "fanin-32".into(),
        about: "32 publishers (own topics) → 1 subscriber of a `+` filter, QoS 0, 64 B".into(),
        kind: Kind::FanIn { pubs: 32 },
    });
    v.push(Scenario {
        name: "latency".into(),
        about: "10 pairs at a fixed 10,000 msg/s in total, QoS 0, 64 B: end-to-end latency".into(),
        kind: Kind::Latency {
            pairs: 10,
            rate: 10_000.0,
        },
    });
    v.push(Scenario {
        name: "connections-10k".into(),
        about: "10,000 idle connections on a fresh broker: connect rate, time to the last CONNACK, RSS per connection".into(),
        kind: Kind::Connections { n: 10_000 },
    });
    v.push(Scenario {
        name: "large-64k".into(),
        about: "4 pairs, QoS 1, 64 KiB payloads (window 64)".into(),
        kind: Kind::Pairs {
            n: 4,
            qos: 1,
            payload: LARGE_PAYLOAD,
        },
    });
    v.push(Scenario {
        name: "login".into(),
        about: format!(
            "{LOGIN_CONCURRENCY} clients connect, log in ({LOGIN_USERS} accounts), disconnect, repeat: logins/s"
        ),
        kind: Kind::Login { cached: true },
    });
    v.push(Scenario {
        name: "login-uncached".into(),
        about: "as login, with shardmq's login cache off (auth.cache_secs: 0): a bcrypt check per login"
            .into(),
        kind: Kind::Login { cached: false },
    });
    v.push(Scenario {
        name: "slow-subscriber".into(),
        about: "1 subscriber that never reads, 1 publisher flooding QoS 0 for the duration: broker RSS growth".into(),
        kind: Kind::SlowSubscriber,
    });
    v
}

pub struct Opts {
    pub runs: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub threads: usize,
    pub gen_threads: usize,
}

#[derive(Clone, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
    pub higher_is_better: bool,
}

/// One run of one scenario against one broker.
pub struct RunResult {
    pub scenario: String,
    pub broker: BrokerKind,
    pub run: usize,
    pub failure: Option<String>,
    pub metrics: Vec<Metric>,
    /// Context: CPU use, counts, memory.
    pub info: Vec<(&'static str, f64)>,
}

impl RunResult {
    /// One line for the progress log.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .metrics
            .iter()
            .map(|m| format!("{} {} {}", m.name, crate::report::num(m.value), m.unit))
            .collect();
        for (k, v) in &self.info {
            parts.push(format!("{k} {}", crate::report::num(*v)));
        }
        let body = parts.join(", ");
        match &self.failure {
            Some(f) if body.is_empty() => format!("FAILED: {f}"),
            Some(f) => format!("FAILED: {f} ({body})"),
            None => body,
        }
    }
}

struct Plan {
    roles: Vec<Role>,
    /// For each client: the publisher ids it must receive (subscribers only).
    expects: Vec<Vec<u32>>,
    /// Deliveries per published message.
    fanout: u64,
    qos: u8,
    payload: usize,
}

fn plan(kind: &Kind, accounts: Option<&Accounts>) -> Plan {
    let mut roles = Vec::new();
    let mut expects = Vec::new();
    let pubr = |id: u32, topic: String, qos: u8, rate: Option<f64>, payload: usize| Role::Pub {
        id,
        topic,
        qos,
        window: WINDOW,
        rate,
        payload,
    };
    let sub = |filter: String, qos: u8| Role::Sub {
        filter,
        qos,
        read: true,
    };
    let (fanout, qos, payload) = match *kind {
        Kind::Pairs { n, qos, payload } => {
            for i in 0..n {
                let topic = format!("bench/pair/{i}");
                roles.push(pubr(i as u32, topic.clone(), qos, None, payload));
                expects.push(vec![]);
                roles.push(sub(topic, qos));
                expects.push(vec![i as u32]);
            }
            (1, qos, payload)
        }
        Kind::Latency { pairs, rate } => {
            for i in 0..pairs {
                let topic = format!("bench/lat/{i}");
                let r = Some(rate / pairs as f64);
                roles.push(pubr(i as u32, topic.clone(), 0, r, PAYLOAD));
                expects.push(vec![]);
                roles.push(sub(topic, 0));
                expects.push(vec![i as u32]);
            }
            (1, 0, PAYLOAD)
        }
        Kind::FanOut { subs } => {
            roles.push(pubr(0, "bench/fanout".into(), 0, None, PAYLOAD));
            expects.push(vec![]);
            for _ in 0..subs {
                roles.push(sub("bench/fanout".into(), 0));
                expects.push(vec![0]);
            }
            (subs as u64, 0, PAYLOAD)
        }
        Kind::FanIn { pubs } => {
            roles.push(sub("bench/fanin/+".into(), 0));
            expects.push((0..pubs as u32).collect());
            for i in 0..pubs {
                roles.push(pubr(i as u32, format!("bench/fanin/{i}"), 0, None, PAYLOAD));
                expects.push(vec![]);
            }
            (1, 0, PAYLOAD)
        }
        Kind::Connections { n } => {
            roles.resize(n, Role::Idle);
            expects.resize(n, vec![]);
            (0, 0, 0)
        }
        Kind::Login { .. } => {
            for i in 0..LOGIN_CONCURRENCY {
                let login = accounts.map(|a| a.users[i % a.users.len()].clone());
                roles.push(Role::Churn { login });
                expects.push(vec![]);
            }
            (0, 0, 0)
        }
        Kind::SlowSubscriber => {
            roles.push(Role::Sub {
                filter: "bench/slow".into(),
                qos: 0,
                read: false,
            });
            expects.push(vec![]);
            roles.push(pubr(0, "bench/slow".into(), 0, None, PAYLOAD));
            expects.push(vec![]);
            (1, 0, PAYLOAD)
        }
    };
    Plan {
        roles,
        expects,
        fanout,
        qos,
        payload,
    }
}

#[derive(Clone, Copy)]
struct Snap {
    at: Instant,
    sent: u64,
    received: u64,
    connacks: u64,
    gen_cpu: Duration,
    broker_cpu: Duration,
    steal: Duration,
}

fn snap(shared: &Shared, broker: &Broker) -> Snap {
    Snap {
        at: Instant::now(),
        sent: shared.sent.load(Ordering::Relaxed),
        received: shared.received.load(Ordering::Relaxed),
        connacks: shared.connacks.load(Ordering::Relaxed),
        gen_cpu: sys::self_cpu(),
        broker_cpu: broker.cpu(),
        steal: sys::host_steal(),
    }
}

/// Everything one run holds; dropping it stops the generator threads and kills the broker.
struct Run {
    broker: Broker,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<gen::ThreadOut>>,
    peak_rss: u64,
    errors_seen: usize,
}

impl Run {
    /// Sleeps up to `d` in small steps, watching the broker and the connections; stops early with
    /// `Ok(true)` when `done` says so.
    fn watch(
        &mut self,
        d: Duration,
        mut done: impl FnMut(&Shared) -> bool,
        mut tick: impl FnMut(&Shared),
    ) -> Result<bool, String> {
        let end = Instant::now() + d;
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        loop {
            self.broker.check_alive()?;
            if let Some(r) = self.broker.rss_kib() {
                self.peak_rss = self.peak_rss.max(r);
                if r > RSS_CAP_KIB {
                    return Err(format!(
                        "broker RSS reached {} MiB (the bench stops at {} MiB)",
                        r / 1024,
                        RSS_CAP_KIB / 1024
                    ));
                }
            }
            if self.shared.errors.load(Ordering::Relaxed) > self.errors_seen {
                return Err("connection error".into());
            }
            if done(&self.shared) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(false);
            }
            if now >= next_tick {
                tick(&self.shared);
                next_tick += Duration::from_secs(1);
            }
            std::thread::sleep((end - now).min(Duration::from_millis(10)));
        }
    }

    fn stop(&mut self) -> Vec<gen::ThreadOut> {
        self.shared.set_phase(PH_EXIT);
        self.threads
            .drain(..)
            .map(|t| {
                t.join().unwrap_or_else(|_| gen::ThreadOut {
                    errors: vec!["a generator thread panicked".into()],
                    ..Default::default()
                })
            })
            .collect()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rate(a: &Snap, b: &Snap, f: impl Fn(&Snap) -> u64) -> f64 {
    let dt = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    (f(b).saturating_sub(f(a))) as f64 / dt
}

fn cpu_pct(a: &Snap, b: &Snap, f: impl Fn(&Snap) -> Duration) -> f64 {
    let dt = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    f(b).saturating_sub(f(a)).as_secs_f64() / dt * 100.0
}

fn progress_line(text: &str) {
    let mut e = std::io::stderr();
    if e.is_terminal() {
        let _ = write!(e, "\r    {text}\x1b[K");
        let _ = e.flush();
    }
}

/// Runs `scn` once against a fresh broker of `kind`.
pub fn run_one(
    scn: &Scenario,
    kind: BrokerKind,
    setup: &Setup<'_>,
    accounts: Option<&Accounts>,
    opts: &Opts,
    run: usize,
) -> RunResult {
    let mut res = RunResult {
        scenario: scn.name.clone(),
        broker: kind,
        run,
        failure: None,
        metrics: Vec::new(),
        info: Vec::new(),
    };
    if let Err(e) = execute(scn, kind, setup, accounts, opts, run, &mut res) {
        res.failure = Some(e);
    }
    progress_line("");
    res
}

#[allow(clippy::too_many_arguments)]
fn execute(
    scn: &Scenario,
    kind: BrokerKind,
    setup: &Setup<'_>,
    accounts: Option<&Accounts>,
    opts: &Opts,
    run: usize,
    res: &mut RunResult,
) -> Result<(), String> {
    let (login, cached) = match scn.kind {
        Kind::Login { cached } => (true, cached),
        _ => (false, true),
    };
    if login && accounts.is_none() {
        return Err("no accounts for the login scenario".into());
    }
    let broker = Broker::start(kind, setup, if login { accounts } else { None }, cached)?;
    if matches!(scn.kind, Kind::Connections { .. }) {
        if let Some(n) = broker.nofile() {
            if n < 11_000 {
                return Err(format!("the broker may open only {n} files"));
            }
        }
    }
    let plan = plan(&scn.kind, accounts);
    let n = plan.roles.len();
    let connect_limit = Duration::from_secs(10) + Duration::from_millis(n as u64);
    // QoS 0 messages not delivered 5 s after the publishers stop count as lost; acknowledged QoS 1/2
    // messages get 20 s.
    let drain_limit = Duration::from_secs(if plan.qos == 0 { 5 } else { 20 });
    let shared = Arc::new(Shared::new(
        connect_limit + opts.warmup + opts.duration + drain_limit + Duration::from_secs(5),
    ));
    let g = opts.gen_threads.max(1);
    let cfg = Arc::new(gen::Config {
        addr: broker.addr,
        connect_window: (CONNECT_WINDOW / g).max(1),
        client_prefix: format!("bench-r{run}"),
        sample_latency: matches!(scn.kind, Kind::Latency { .. }),
    });
    let rss_before = broker.rss_kib().unwrap_or(0);
    let mut r = Run {
        broker,
        shared: shared.clone(),
        threads: Vec::new(),
        peak_rss: rss_before,
        errors_seen: 0,
    };
    let mut per_thread: Vec<Vec<(usize, Role)>> = vec![Vec::new(); g];
    for (i, role) in plan.roles.iter().enumerate() {
        per_thread[i % g].push((i, role.clone()));
    }
    for (t, clients) in per_thread.into_iter().enumerate() {
        let h = gen::spawn(format!("gen-{t}"), shared.clone(), cfg.clone(), clients)
            .map_err(|e| format!("cannot start a generator thread: {e}"))?;
        r.threads.push(h);
    }

    // Connect (and subscribe) every client; churn clients never settle, so they skip this.
    if !login {
        let all = r.watch(
            connect_limit,
            |s| s.ready.load(Ordering::Relaxed) >= n,
            |s| {
                progress_line(&format!(
                    "connected {}/{n}",
                    s.ready.load(Ordering::Relaxed)
                ))
            },
        );
        let ready = shared.ready.load(Ordering::Relaxed);
        match all {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "only {ready}/{n} clients connected within {connect_limit:?}"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{e} while connecting ({ready}/{n} ready): {}",
                    first_error(&mut r)
                ))
            }
        }
    }

    if let Kind::Connections { n } = scn.kind {
        let last = Duration::from_nanos(shared.last_connack_ns.load(Ordering::Relaxed));
        let _ = r.watch(Duration::from_millis(500), |_| false, |_| {});
        let rss_after = r.broker.rss_kib().unwrap_or(0);
        let secs = last.as_secs_f64().max(1e-9);
        res.metrics
            .push(metric("connects", "conn/s", n as f64 / secs, true));
        res.metrics.push(metric("last CONNACK", "s", secs, false));
        res.metrics.push(metric(
            "RSS per connection",
            "KiB",
            rss_after.saturating_sub(rss_before) as f64 / n as f64,
            false,
        ));
        res.info
            .push(("RSS before MiB", rss_before as f64 / 1024.0));
        res.info.push(("RSS after MiB", rss_after as f64 / 1024.0));
        r.stop();
        return Ok(());
    }

    // Subscriptions may take effect just after SUBACK: give them a moment before publishing.
    std::thread::sleep(Duration::from_millis(100));
    let slow = matches!(scn.kind, Kind::SlowSubscriber);
    let rss_start = r.broker.rss_kib().unwrap_or(0);
    shared.set_phase(PH_PUBLISH);
    let warmup = if slow { Duration::ZERO } else { opts.warmup };
    if let Err(e) = r.watch(warmup, |_| false, |_| progress_line("warming up")) {
        return Err(format!("{e} during warm-up: {}", first_error(&mut r)));
    }
    let a = snap(&shared, &r.broker);
    shared.set_phase(PH_MEASURE);
    let mut last = a;
    let broker_ref_pid = r.broker.pid;
    let tick = |s: &Shared| {
        let now = Snap {
            at: Instant::now(),
            sent: s.sent.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            connacks: s.connacks.load(Ordering::Relaxed),
            gen_cpu: Duration::ZERO,
            broker_cpu: Duration::ZERO,
            steal: Duration::ZERO,
        };
        let text = if login {
            format!("{:.0} logins/s", rate(&last, &now, |x| x.connacks))
        } else if slow {
            let rss = sys::rss_kib(broker_ref_pid).unwrap_or(0);
            format!(
                "{:.0} msg/s published, broker RSS {:.1} MiB",
                rate(&last, &now, |x| x.sent),
                rss as f64 / 1024.0
            )
        } else {
            format!(
                "{:.0} msg/s published, {:.0} msg/s delivered",
                rate(&last, &now, |x| x.sent),
                rate(&last, &now, |x| x.received)
            )
        };
        progress_line(&text);
        last = now;
    };
    if let Err(e) = r.watch(opts.duration, |_| false, tick) {
        return Err(format!("{e} while measuring: {}", first_error(&mut r)));
    }
    let b = snap(&shared, &r.broker);
    let gen_cpu = cpu_pct(&a, &b, |x| x.gen_cpu);
    if gen_cpu > 85.0 * opts.gen_threads as f64 {
        eprintln!(
            "    warning: the generator used {gen_cpu:.0}% CPU with {} thread(s): it may be the bottleneck (try --gen-threads)",
            opts.gen_threads
        );
    }
    res.info.push(("gen CPU %", gen_cpu));
    res.info
        .push(("broker CPU %", cpu_pct(&a, &b, |x| x.broker_cpu)));
    // Percent of all CPUs' time, as `top` shows it.
    let steal = cpu_pct(&a, &b, |x| x.steal) / sys::cpus() as f64;
    res.info.push(("host steal %", steal));

    if login {
        res.metrics.push(metric(
            "logins",
            "conn/s",
            rate(&a, &b, |x| x.connacks),
            true,
        ));
        r.stop();
        return Ok(());
    }
    if slow {
        let rss_end = r.broker.rss_kib().unwrap_or(0);
        res.metrics.push(metric(
            "RSS growth",
            "MiB",
            rss_end.saturating_sub(rss_start) as f64 / 1024.0,
            false,
        ));
        res.metrics.push(metric(
            "peak RSS growth",
            "MiB",
            r.peak_rss.saturating_sub(rss_start) as f64 / 1024.0,
            false,
        ));
        res.info.push(("published msg/s", rate(&a, &b, |x| x.sent)));
        r.stop();
        return Ok(());
    }

    // Drain: stop publishing, wait for acknowledgements and deliveries still on their way.
    shared.set_phase(PH_DRAIN);
    std::thread::sleep(Duration::from_millis(50));
    let expected = shared.sent.load(Ordering::Relaxed) * plan.fanout;
    let quiet = if plan.qos == 0 {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let mut last_count = 0;
    let mut last_change = Instant::now();
    let drain_start = Instant::now();
    let drained = match r.watch(
        drain_limit,
        |s| {
            let got = s.received.load(Ordering::Relaxed);
            let inflight = s.inflight.load(Ordering::Relaxed);
            if got != last_count {
                last_count = got;
                last_change = Instant::now();
            }
            (got >= expected && inflight == 0) || last_change.elapsed() > quiet
        },
        |s| {
            progress_line(&format!(
                "draining: {}/{expected} delivered",
                s.received.load(Ordering::Relaxed)
            ))
        },
    ) {
        Ok(d) => d,
        Err(e) => return Err(format!("{e} while draining: {}", first_error(&mut r))),
    };
    res.info
        .push(("drain s", drain_start.elapsed().as_secs_f64()));
    let undelivered = expected.saturating_sub(shared.received.load(Ordering::Relaxed));
    if undelivered > 0 {
        res.info
            .push(("undelivered after drain", undelivered as f64));
    }
    let outs = r.stop();
    let v = verify(&plan, &outs);
    let published = b.sent - a.sent;
    let delivered = rate(&a, &b, |x| x.received);
    match scn.kind {
        Kind::Latency { .. } => {
            let mut lat: Vec<u64> = outs
                .iter()
                .flat_map(|o| o.latencies_ns.iter().copied())
                .collect();
            lat.sort_unstable();
            if lat.is_empty() {
                return Err("no latency samples".into());
            }
            let pct = |p: f64| {
                let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
                lat[i] as f64 / 1000.0
            };
            res.metrics.push(metric("p50", "µs", pct(0.50), false));
            res.metrics.push(metric("p99", "µs", pct(0.99), false));
            res.metrics.push(metric("p99.9", "µs", pct(0.999), false));
            res.metrics.push(metric("max", "µs", pct(1.0), false));
            res.info.push(("delivered msg/s", delivered));
            res.info.push(("samples", lat.len() as f64));
        }
        _ => {
            res.metrics
                .push(metric("delivered", "msg/s", delivered, true));
            if plan.payload >= LARGE_PAYLOAD {
                res.metrics.push(metric(
                    "delivered",
                    "MiB/s",
                    delivered * plan.payload as f64 / (1024.0 * 1024.0),
                    true,
                ));
            }
        }
    }
    res.info.push((
        "published msg/s",
        published as f64 / b.at.duration_since(a.at).as_secs_f64(),
    ));
    if plan.qos == 0 {
        res.metrics.push(metric("loss", "%", v.loss_pct(), false));
        res.info.push(("lost", v.missing as f64));
    }
    res.info.push(("peak RSS MiB", r.peak_rss as f64 / 1024.0));
    if v.dups > 0 {
        res.info.push(("duplicates", v.dups as f64));
    }
    if v.reordered > 0 {
        res.info.push(("reordered", v.reordered as f64));
    }
    if let Some(f) = v.failure(plan.qos, drained) {
        return Err(f);
    }
    Ok(())
}

fn metric(name: &'static str, unit: &'static str, value: f64, higher_is_better: bool) -> Metric {
    Metric {
        name,
        unit,
        value,
        higher_is_better,
    }
}

fn first_error(r: &mut Run) -> String {
    let outs = r.stop();
    let errs: Vec<String> = outs.into_iter().flat_map(|o| o.errors).collect();
    if errs.is_empty() {
        "no client error recorded".into()
    } else {
        errs.join("; ")
    }
}

#[derive(Default)]
struct Verdict {
    expected: u64,
    missing: u64,
    lost_acked: u64,
    unacked: u64,
    dups: u64,
    reordered: u64,
    misrouted: u64,
    errors: Vec<String>,
}

impl Verdict {
    fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.missing as f64 * 100.0 / self.expected as f64
        }
    }

    fn failure(&self, qos: u8, drained: bool) -> Option<String> {
        if let Some(e) = self.errors.first() {
            return Some(e.clone());
        }
        if self.misrouted > 0 {
            return Some(format!(
                "{} messages reached a subscriber not subscribed to them",
                self.misrouted
            ));
        }
        if qos == 0 {
            return None;
        }
        if self.lost_acked > 0 {
            return Some(format!(
                "{} acknowledged QoS {qos} messages never delivered (of {} expected)",
                self.lost_acked, self.expected
            ));
        }
        if self.unacked > 0 {
            return Some(format!(
                "{} QoS {qos} messages still unacknowledged after the drain{}",
                self.unacked,
                if drained { "" } else { " (drain timed out)" }
            ));
        }
        if qos == 2 && self.dups > 0 {
            return Some(format!("{} duplicates at QoS 2", self.dups));
        }
        if self.reordered > 0 {
            return Some(format!("{} messages out of order", self.reordered));
        }
        None
    }
}

/// Checks what every subscriber received against what every publisher sent.
fn verify(plan: &Plan, outs: &[gen::ThreadOut]) -> Verdict {
    let mut v = Verdict::default();
    let mut sent = Vec::new();
    let mut unacked: Vec<HashSet<u64>> = Vec::new();
    for p in outs.iter().flat_map(|o| &o.pubs) {
        let id = p.id as usize;
        if id >= sent.len() {
            sent.resize(id + 1, 0);
            unacked.resize_with(id + 1, HashSet::new);
        }
        sent[id] = p.sent;
        unacked[id] = p.unacked.iter().copied().collect();
        v.unacked += p.unacked.len() as u64;
    }
    for o in outs {
        v.errors.extend(o.errors.iter().cloned());
        for s in &o.subs {
            let expects = &plan.expects[s.index];
            for (p, t) in s.tracks.iter().enumerate() {
                if t.received > 0 && !expects.contains(&(p as u32)) {
                    v.misrouted += t.received;
                }
            }
            for &p in expects {
                let p = p as usize;
                let n = sent.get(p).copied().unwrap_or(0);
                let empty = gen::Track::default();
                let t = s.tracks.get(p).unwrap_or(&empty);
                let got = t.count_below(n);
                v.expected += n;
                v.missing += n - got;
                if t.received > got {
                    v.misrouted += t.received - got;
                }
                let missing_unacked = unacked
                    .get(p)
                    .map_or(0, |u| u.iter().filter(|&&q| !t.has(q)).count() as u64);
                v.lost_acked += (n - got).saturating_sub(missing_unacked);
                v.dups += t.dups;
                v.reordered += t.reordered;
            }
        }
    }
    v
}
