//! The load generator: a few threads, each running one `mio` readiness loop over its share of the
//! clients. Writes are batched (every packet produced in a loop turn goes out in one `write` per
//! socket), reads go through one scratch buffer per thread, and received PUBLISH packets are parsed
//! in place. Every message carries (publisher, sequence, send time) so subscribers can check counts,
//! duplicates and order, and measure latency.
//!
//! The coordinator (scenarios.rs) steers the threads through [`Shared::phase`] and reads their
//! counters; at the end each thread returns a [`ThreadOut`] with what it saw. No I/O error panics: a
//! failed connection is closed, counted and described.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::wire::{self, In};

/// Connecting (and subscribing); publishers wait.
pub const PH_CONNECT: u8 = 0;
/// Publishers publish (warm-up).
pub const PH_PUBLISH: u8 = 1;
/// Publishers publish; latency samples are kept.
pub const PH_MEASURE: u8 = 2;
/// Publishers stop; acknowledgements and deliveries still in flight are processed.
pub const PH_DRAIN: u8 = 3;
/// Threads return.
pub const PH_EXIT: u8 = 4;

/// Bytes queued to one socket beyond which a publisher stops producing until they are written.
const HIGH_WATER: usize = 64 * 1024;
/// Bytes read from one socket per loop turn before the others get their turn.
const READ_BUDGET: usize = 1024 * 1024;
/// Largest sequence number a subscriber will track (a bit per message).
const MAX_SEQ: u64 = 1 << 31;

#[derive(Clone, Debug)]
pub enum Role {
    /// Publishes on `topic`; `rate` messages per second, or as fast as the socket takes them. At QoS
    /// 1/2 at most `window` messages are unacknowledged.
    Pub {
        id: u32,
        topic: String,
        qos: u8,
        window: usize,
        rate: Option<f64>,
        payload: usize,
    },
    /// Subscribes to `filter`; with `read: false` it stops reading once subscribed (a stuck client).
    Sub { filter: String, qos: u8, read: bool },
    /// Connects and stays.
    Idle,
    /// Connects, gets CONNACK, disconnects, connects again, ... (optionally logging in).
    Churn { login: Option<(String, String)> },
}

/// Counters shared with the coordinator; threads add their local counts once per loop turn.
pub struct Shared {
    /// Time zero for the send timestamps in payloads.
    pub base: Instant,
    /// No thread runs past this instant, whatever the phase.
    pub deadline: Instant,
    pub phase: AtomicU8,
    /// Clients connected (and subscribed, for subscribers).
    pub ready: AtomicUsize,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub connacks: AtomicU64,
    /// Publisher messages not yet acknowledged, all threads together.
    pub inflight: AtomicI64,
    /// Nanoseconds since `base` of the latest CONNACK.
    pub last_connack_ns: AtomicU64,
    pub errors: AtomicUsize,
}

impl Shared {
    pub fn new(deadline: Duration) -> Shared {
        let base = Instant::now();
        Shared {
            base,
            deadline: base + deadline,
            phase: AtomicU8::new(PH_CONNECT),
            ready: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            connacks: AtomicU64::new(0),
            inflight: AtomicI64::new(0),
            last_connack_ns: AtomicU64::new(0),
            errors: AtomicUsize::new(0),
        }
    }

    pub fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::Release);
    }
}

pub struct Config {
    pub addr: SocketAddr,
    /// Connections of one thread that may be between `connect()` and CONNACK at once.
    pub connect_window: usize,
    pub client_prefix: String,
    /// Keep end-to-end latency samples during [`PH_MEASURE`].
    pub sample_latency: bool,
}

/// Which sequence numbers of one publisher a subscriber received.
#[derive(Default)]
pub struct Track {
    pub seen: Vec<u64>,
    pub received: u64,
    pub dups: u64,
    /// Arrived after a higher sequence number of the same publisher.
    pub reordered: u64,
    next: u64,
}

impl Track {
    fn record(&mut self, seq: u64) {
        let w = (seq / 64) as usize;
        if w >= self.seen.len() {
            self.seen.resize(w + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.seen[w] & bit != 0 {
            self.dups += 1;
            return;
        }
        self.seen[w] |= bit;
        self.received += 1;
        if seq < self.next {
            self.reordered += 1;
        } else {
            self.next = seq + 1;
        }
    }

    /// Whether `seq` was received.
    pub fn has(&self, seq: u64) -> bool {
        self.seen
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// How many of the sequence numbers `0..n` were received.
    pub fn count_below(&self, n: u64) -> u64 {
        let full = (n / 64) as usize;
        let mut c: u64 = self
            .seen
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rest = n % 64;
        if rest > 0 {
            if let Some(w) = self.seen.get(full) {
                c += u64::from((w & ((1u64 << rest) - 1)).count_ones());
            }
        }
        c
    }
}

pub struct PubOut {
    pub id: u32,
    /// Messages produced (sequence numbers `0..sent`).
    pub sent: u64,
    /// Sequence numbers still unacknowledged at the end (QoS 1/2).
    pub unacked: Vec<u64>,
}

pub struct SubOut {
    /// Index of the client in the scenario's list.
    pub index: usize,
    /// Indexed by publisher id.
    pub tracks: Vec<Track>,
}

#[derive(Default)]
pub struct ThreadOut {
    pub pubs: Vec<PubOut>,
    pub subs: Vec<SubOut>,
    pub latencies_ns: Vec<u64>,
    /// The first few failures, described.
    pub errors: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    /// Not opened yet (or a churn client between two connections).
    Pending,
    Connecting,
    WaitConnAck,
    WaitSubAck,
    Ready,
    Closed,
}

struct Conn {
    index: usize,
    role: Role,
    stream: Option<TcpStream>,
    st: St,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// The last write hit `WouldBlock`: wait for a writable event.
    blocked: bool,
    in_dirty: bool,
    /// Connections made so far (client ids of churn clients differ per connection).
    generation: u64,
    // Publisher state.
    seq: u64,
    inflight: VecDeque<(u16, u64)>,
    next_pkid: u16,
    next_due: Instant,
    interval: Option<Duration>,
    template: Vec<u8>,
    // Subscriber state.
    tracks: Vec<Track>,
}

impl Conn {
    fn new(index: usize, role: Role, now: Instant) -> Conn {
        let (template, interval) = match &role {
            Role::Pub { payload, rate, .. } => (
                vec![0u8; (*payload).max(wire::HEADER_LEN)],
                rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1e-3))),
            ),
            _ => (Vec::new(), None),
        };
        Conn {
            index,
            role,
            stream: None,
            st: St::Pending,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            blocked: false,
            in_dirty: false,
            generation: 0,
            seq: 0,
            inflight: VecDeque::new(),
            next_pkid: 1,
            next_due: now,
            interval,
            template,
            tracks: Vec::new(),
        }
    }

    fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Whether this client reads its socket now.
    fn reads(&self) -> bool {
        !matches!(self.role, Role::Sub { read: false, .. }) || self.st != St::Ready
    }
}

/// Per-turn counts, added to [`Shared`] at the end of each turn.
#[derive(Default)]
struct Local {
    sent: u64,
    received: u64,
    connacks: u64,
    ready: usize,
    errors: usize,
    last_connack_ns: u64,
}

struct Worker {
    shared: Arc<Shared>,
    cfg: Arc<Config>,
    poll: Poll,
    conns: Vec<Conn>,
    dirty: Vec<usize>,
    /// Connections with unread bytes left after their read budget.
    reread: Vec<usize>,
    /// Churn clients waiting to connect again.
    reopen: VecDeque<usize>,
    next_open: usize,
    handshaking: usize,
    local: Local,
    out: ThreadOut,
    reported_inflight: i64,
    measuring: bool,
    phase: u8,
}

/// Starts one generator thread for `clients` (pairs of scenario index and role).
pub fn spawn(
    name: String,
    shared: Arc<Shared>,
    cfg: Arc<Config>,
    clients: Vec<(usize, Role)>,
) -> io::Result<JoinHandle<ThreadOut>> {
    let poll = Poll::new()?;
    std::thread::Builder::new().name(name).spawn(move || {
        let now = Instant::now();
        let conns = clients
            .into_iter()
            .map(|(i, r)| Conn::new(i, r, now))
            .collect();
        let mut w = Worker {
            shared,
            cfg,
            poll,
            conns,
            dirty: Vec::new(),
            reread: Vec::new(),
            reopen: VecDeque::new(),
            next_open: 0,
            handshaking: 0,
            local: Local::default(),
            out: ThreadOut::default(),
            reported_inflight: 0,
            measuring: false,
            phase: PH_CONNECT,
        };
        w.run();
        w.finish()
    })
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut scratch = vec![0u8; 256 * 1024];
        loop {
            self.phase = self.shared.phase.load(Ordering::Acquire);
            let now = Instant::now();
            if self.phase >= PH_EXIT || now >= self.shared.deadline {
                break;
            }
            self.measuring = self.phase == PH_MEASURE;
            self.open_connections();
            let publishing = self.phase == PH_PUBLISH || self.phase == PH_MEASURE;
            let mut wake = now + Duration::from_millis(10);
            let mut busy = !self.reread.is_empty();
            if publishing {
                for i in 0..self.conns.len() {
                    if matches!(self.conns[i].role, Role::Pub { .. }) {
                        match self.produce(i, now) {
                            Some(due) if due <= now => busy = true,
                            Some(due) => wake = wake.min(due),
                            None => {}
                        }
                    }
                }
            }
            self.flush_dirty();
            let timeout = if busy {
                Duration::ZERO
            } else {
                wake.saturating_duration_since(Instant::now())
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.note_error(format!("poll: {e}"));
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if i >= self.conns.len() {
                    continue;
                }
                if self.conns[i].st == St::Connecting && !self.check_connected(i) {
                    continue;
                }
                if ev.is_writable() {
                    let c = &mut self.conns[i];
                    c.blocked = false;
                    if c.pending() > 0 {
                        self.mark_dirty(i);
                    }
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(i, &mut scratch);
                }
            }
            for i in std::mem::take(&mut self.reread) {
                self.read(i, &mut scratch);
            }
            self.flush_dirty();
            self.report();
        }
        self.report();
    }

    fn finish(mut self) -> ThreadOut {
        for c in &mut self.conns {
            if let Some(mut s) = c.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
            match &c.role {
                Role::Pub { id, .. } => self.out.pubs.push(PubOut {
                    id: *id,
                    sent: c.seq,
                    unacked: c.inflight.iter().map(|&(_, s)| s).collect(),
                }),
                Role::Sub { .. } => self.out.subs.push(SubOut {
                    index: c.index,
                    tracks: std::mem::take(&mut c.tracks),
                }),
                _ => {}
            }
        }
        self.out
    }

    fn report(&mut self) {
        let s = &self.shared;
        let l = std::mem::take(&mut self.local);
        if l.sent > 0 {
            s.sent.fetch_add(l.sent, Ordering::Relaxed);
        }
        if l.received > 0 {
            s.received.fetch_add(l.received, Ordering::Relaxed);
        }
        if l.connacks > 0 {
            s.connacks.fetch_add(l.connacks, Ordering::Relaxed);
            s.last_connack_ns
                .fetch_max(l.last_connack_ns, Ordering::Relaxed);
        }
        if l.ready > 0 {
            s.ready.fetch_add(l.ready, Ordering::Relaxed);
        }
        if l.errors > 0 {
            s.errors.fetch_add(l.errors, Ordering::Relaxed);
        }
        let inflight: i64 = self.conns.iter().map(|c| c.inflight.len() as i64).sum();
        if inflight != self.reported_inflight {
            s.inflight
                .fetch_add(inflight - self.reported_inflight, Ordering::Relaxed);
            self.reported_inflight = inflight;
        }
    }

    fn note_error(&mut self, msg: String) {
        self.local.errors += 1;
        if self.out.errors.len() < 5 {
            self.out.errors.push(msg);
        }
    }

    fn fail(&mut self, i: usize, what: String) {
        let c = &mut self.conns[i];
        if matches!(c.st, St::Connecting | St::WaitConnAck) {
            self.handshaking -= 1;
        }
        c.st = St::Closed;
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        if self.phase >= PH_EXIT {
            return;
        }
        let msg = format!("client {} ({}): {what}", c.index, role_name(&c.role));
        self.note_error(msg);
    }

    fn client_id(&self, i: usize) -> String {
        let c = &self.conns[i];
        format!("{}-{}-{}", self.cfg.client_prefix, c.index, c.generation)
    }

    fn open_connections(&mut self) {
        if self.phase >= PH_DRAIN {
            return;
        }
        while self.handshaking < self.cfg.connect_window {
            let i = if let Some(i) = self.reopen.pop_front() {
                i
            } else if self.next_open < self.conns.len() {
                self.next_open += 1;
                self.next_open - 1
            } else {
                return;
            };
            match TcpStream::connect(self.cfg.addr) {
                Ok(mut s) => {
                    if let Err(e) = self.poll.registry().register(
                        &mut s,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.conns[i].st = St::Closed;
                        self.note_error(format!("register: {e}"));
                        continue;
                    }
                    let c = &mut self.conns[i];
                    c.stream = Some(s);
                    c.st = St::Connecting;
                    c.generation += 1;
                    c.rbuf.clear();
                    c.wbuf.clear();
                    c.wpos = 0;
                    c.blocked = false;
                    self.handshaking += 1;
                }
                Err(e) => {
                    self.conns[i].st = St::Closed;
                    self.note_error(format!("connect: {e}"));
                }
            }
        }
    }

    /// Completes a non-blocking connect; false while still connecting or failed.
    fn check_connected(&mut self, i: usize) -> bool {
        let Some(s) = self.conns[i].stream.as_ref() else {
            return false;
        };
        match s.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                self.fail(i, format!("connect: {e}"));
                return false;
            }
        }
        match s.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
            Err(e) => {
                self.fail(i, format!("connect: {e}"));
                return false;
            }
        }
        let _ = s.set_nodelay(true);
        let id = self.client_id(i);
        let c = &mut self.conns[i];
        let login = match &c.role {
            Role::Churn {
                login: Some((u, p)),
            } => Some((u.as_str(), p.as_str())),
            _ => None,
        };
        wire::connect(&mut c.wbuf, &id, login);
        c.st = St::WaitConnAck;
        self.mark_dirty(i);
        true
    }

    fn mark_dirty(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(i);
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.conns[i].in_dirty = false;
            self.flush(i);
        }
        let mut dirty = dirty;
        dirty.clear();
        // Anything marked during the flush (failures only) stays for the next turn.
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.blocked || c.pending() == 0 {
            return;
        }
        let Some(s) = c.stream.as_mut() else {
            return;
        };
        let mut err = None;
        while c.wpos < c.wbuf.len() {
            match s.write(&c.wbuf[c.wpos..]) {
                Ok(0) => {
                    err = Some("write returned 0".to_string());
                    break;
                }
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(format!("write: {e}"));
                    break;
                }
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
            if c.wbuf.capacity() > 4 * HIGH_WATER {
                c.wbuf.shrink_to(HIGH_WATER);
            }
        }
        if let Some(e) = err {
            self.fail(i, e);
        }
    }

    /// Queues what publisher `i` may send now. Returns when it next has something to do (`<= now`:
    /// at once), or `None` when it waits for the socket or for acknowledgements.
    fn produce(&mut self, i: usize, now: Instant) -> Option<Instant> {
        let base = self.shared.base;
        let c = &mut self.conns[i];
        let Role::Pub {
            id,
            ref topic,
            qos,
            window,
            ..
        } = c.role
        else {
            return None;
        };
        if c.st != St::Ready || c.blocked {
            return None;
        }
        if let Some(&(_, oldest)) = c.inflight.front() {
            if c.seq - oldest > 60_000 {
                let msg = format!("message {oldest} unacknowledged after 60000 newer ones");
                self.fail(i, msg);
                return None;
            }
        }
        let now_ns = now.duration_since(base).as_nanos() as u64;
        let mut pending = c.pending();
        let mut produced = 0u64;
        let next = loop {
            if pending >= HIGH_WATER {
                break Some(now);
            }
            if qos > 0 && c.inflight.len() >= window {
                break None;
            }
            if let Some(iv) = c.interval {
                if c.next_due > now {
                    break Some(c.next_due);
                }
                c.next_due += iv;
                if now.saturating_duration_since(c.next_due) > Duration::from_millis(100) {
                    c.next_due = now;
                }
            }
            let mut pkid = 0;
            if qos > 0 {
                pkid = c.next_pkid;
                c.next_pkid = c.next_pkid.checked_add(1).unwrap_or(1);
                c.inflight.push_back((pkid, c.seq));
            }
            let before = c.wbuf.len();
            wire::publish(
                &mut c.wbuf,
                topic,
                qos,
                pkid,
                &c.template,
                wire::header(id, c.seq, now_ns),
            );
            pending += c.wbuf.len() - before;
            c.seq += 1;
            produced += 1;
        };
        self.local.sent += produced;
        if produced > 0 {
            self.mark_dirty(i);
        }
        // A full buffer is written this turn; the socket then says whether more fits.
        match next {
            Some(t) if t <= now => Some(now),
            other => other,
        }
    }

    fn read(&mut self, i: usize, scratch: &mut [u8]) {
        let mut total = 0;
        loop {
            let c = &mut self.conns[i];
            if !c.reads() {
                return;
            }
            let Some(s) = c.stream.as_mut() else {
                return;
            };
            if total >= READ_BUDGET {
                self.reread.push(i);
                return;
            }
            match s.read(scratch) {
                Ok(0) => {
                    let what = if self.phase >= PH_DRAIN {
                        "connection closed by the broker (while draining)"
                    } else {
                        "connection closed by the broker"
                    };
                    self.fail(i, what.to_string());
                    return;
                }
                Ok(n) => {
                    total += n;
                    if let Err(e) = self.consume(i, &scratch[..n]) {
                        self.fail(i, e);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(i, format!("read: {e}"));
                    return;
                }
            }
        }
    }

    /// Parses the whole packets in the connection's leftover bytes plus `data`.
    fn consume(&mut self, i: usize, data: &[u8]) -> Result<(), String> {
        if self.conns[i].rbuf.is_empty() {
            let used = self.packets(i, data)?;
            if used < data.len() && self.conns[i].stream.is_some() {
                self.conns[i].rbuf.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.conns[i].rbuf);
            buf.extend_from_slice(data);
            let used = self.packets(i, &buf)?;
            buf.drain(..used);
            if self.conns[i].stream.is_some() {
                self.conns[i].rbuf = buf;
            }
        }
        Ok(())
    }

    fn packets(&mut self, i: usize, mut buf: &[u8]) -> Result<usize, String> {
        let start = buf.len();
        while let Some((p, len)) = wire::next(buf)? {
            self.packet(i, p)?;
            buf = &buf[len..];
            if self.conns[i].stream.is_none() {
                break;
            }
        }
        Ok(start - buf.len())
    }

    fn packet(&mut self, i: usize, p: In<'_>) -> Result<(), String> {
        let c = &mut self.conns[i];
        match p {
            In::ConnAck { code } => {
                if c.st != St::WaitConnAck {
                    return Err("unexpected CONNACK".into());
                }
                if code != 0 {
                    return Err(format!("CONNACK refused with code {code}"));
                }
                self.handshaking -= 1;
                self.local.connacks += 1;
                self.local.last_connack_ns = self.shared.base.elapsed().as_nanos() as u64;
                match &c.role {
                    Role::Sub { filter, qos, .. } => {
                        wire::subscribe(&mut c.wbuf, 1, filter, *qos);
                        c.st = St::WaitSubAck;
                        self.mark_dirty(i);
                    }
                    Role::Pub { .. } | Role::Idle => {
                        c.st = St::Ready;
                        self.local.ready += 1;
                    }
                    Role::Churn { .. } => {
                        if let Some(mut s) = c.stream.take() {
                            // Best effort: the broker may see a close without DISCONNECT.
                            let _ = s.write(&wire::DISCONNECT);
                            let _ = self.poll.registry().deregister(&mut s);
                        }
                        c.st = St::Pending;
                        self.reopen.push_back(i);
                    }
                }
            }
            In::SubAck { code } => {
                if c.st != St::WaitSubAck {
                    return Err("unexpected SUBACK".into());
                }
                if code == 0x80 {
                    return Err("subscription refused (SUBACK 0x80)".into());
                }
                c.st = St::Ready;
                self.local.ready += 1;
            }
            In::Publish { qos, pkid, payload } => {
                let Some((publisher, seq, sent_ns)) = wire::parse_header(payload) else {
                    return Err("PUBLISH without the bench header".into());
                };
                if publisher > 1_000_000 || seq >= MAX_SEQ {
                    return Err(format!("corrupt header: publisher {publisher} seq {seq}"));
                }
                let p = publisher as usize;
                if p >= c.tracks.len() {
                    c.tracks.resize_with(p + 1, Track::default);
                }
                c.tracks[p].record(seq);
                self.local.received += 1;
                if self.measuring && self.cfg.sample_latency {
                    let now = self.shared.base.elapsed().as_nanos() as u64;
                    self.out.latencies_ns.push(now.saturating_sub(sent_ns));
                }
                match qos {
                    1 => wire::ack(&mut c.wbuf, wire::PUBACK, pkid),
                    2 => wire::ack(&mut c.wbuf, wire::PUBREC, pkid),
                    _ => return Ok(()),
                }
                self.mark_dirty(i);
            }
            In::PubRel(id) => {
                wire::ack(&mut c.wbuf, wire::PUBCOMP, id);
                self.mark_dirty(i);
            }
            In::PubAck(id) | In::PubComp(id) => {
                let Some(pos) = c.inflight.iter().position(|&(k, _)| k == id) else {
                    return Err(format!("acknowledgement for unknown packet id {id}"));
                };
                c.inflight.remove(pos);
            }
            In::PubRec(id) => {
                if !c.inflight.iter().any(|&(k, _)| k == id) {
                    return Err(format!("PUBREC for unknown packet id {id}"));
                }
                wire::ack(&mut c.wbuf, wire::PUBREL, id);
                self.mark_dirty(i);
            }
            In::Other => {}
        }
        Ok(())
    }
}

fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Pub { .. } => "publisher",
        Role::Sub { .. } => "subscriber",
        Role::Idle => "idle",
        Role::Churn { .. } => "login",
    }
}
