//! A shard: the connections one worker serves and the sessions whose client id hashes to that worker.
//!
//! A connection is accepted by any worker, which reads its CONNECT and has the credentials checked; then
//! the connection moves (socket, CONNECT and any bytes read after it) to the client id's *home* worker,
//! where its session lives. So each session has exactly one place, and a second CONNECT with the same
//! client id always meets the first at the same shard, whichever worker accepted either socket.
//!
//! This is the only state that touches sockets. It never blocks and never sends on a channel itself:
//! work for partitions and other workers goes into the [`Outbox`], which the worker flushes once per turn.

mod conn;
mod info;

pub use conn::ConnRef;
pub use info::{ClientInfo, WillInfo};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::auth::{AuthHandle, AuthJob, UserTable, Verdict};
use crate::config::Settings;
use crate::events::{DisconnectKind, EventBus, EventKind};
use crate::message::{home_of, partition_of, ClientId, Delivery, Message};
use crate::metrics::WorkerMetrics;
use crate::protocol::{
    self, ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PacketId, Publish, QoS, SubAck,
    SubAckCode, Subscribe, Unsubscribe,
};
use crate::session::{Offer, OutState, Outgoing, Session};
use crate::topic::{has_wildcard, validate_filter, TopicList};
use crate::worker::{Envelope, Handoff, Outbox, Route, WorkerHandle, WorkerMsg};
use conn::{Conn, Phase, Slab};
use crossbeam_channel::Receiver;

/// Bytes asked for by one read.
const READ_SIZE: usize = 128 * 1024;
/// Bytes read from one connection per turn before others get theirs.
const READ_BUDGET: usize = READ_SIZE;
/// Envelope cost one loop turn may produce before publishers wait for the next turn (bounds the
/// overshoot past the inbox high-water mark when one publish fans out to thousands).
const TURN_OUTPUT_BUDGET: usize = 4 << 20;
/// A subscriber's pending bytes beyond which it is written at once instead of at the end of the turn.
const EARLY_FLUSH: usize = 64 * 1024;
/// The worker's shared read buffer: one read, after the carried-over start of a packet.
const SCRATCH_SIZE: usize = 2 * READ_SIZE;
/// Write buffers larger than this are released once flushed, so idle connections hold none.
const KEEP_WBUF_CAPACITY: usize = 4096;
/// Released write buffers up to this capacity, and up to this many, are kept per worker for reuse:
/// a subscriber of large messages would otherwise allocate (and the kernel zero) a fresh buffer for
/// each one. At most 4 MiB per worker.
const SPARE_WBUF_CAPACITY: usize = 256 * 1024;
const SPARE_WBUFS: usize = 16;
/// Messages waiting for a connected session beyond which publishers pause (when half of
/// `max_queued_messages` is more). A deep queue for a connected subscriber buys no throughput, since
/// its in-flight window paces it, only memory and delay: a large `max_queued_messages` is for sessions
/// while they are offline. Not much less either: the pause is broker-wide, and while one queue is over
/// it the others must hold enough to keep their subscribers busy (1024 starved them in the bench).
const PRESSURE_QUEUED: usize = 8192;
/// The same in payload bytes, so that a queue of large messages pauses publishers too.
const PRESSURE_QUEUED_BYTES: usize = 16 << 20;
/// QoS 2 completion events per worker and second (see `Shard::qos2_event`).
const QOS2_EVENTS_PER_SEC: u32 = 20;
/// Inbox messages taken in after one read; the rest wait for the worker's normal inbox turn.
const EARLY_LIMIT: usize = 1024;
/// A fresh session moves to its first topic's worker only while that worker serves fewer than this
/// many connections more than the current one: a thousand subscribers of one topic stay spread over
/// the workers (their deliveries are written in parallel) instead of piling onto one.
const PLACEMENT_SLACK: i64 = 16;

/// Why a connection ended: logged, and decides whether the will is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// DISCONNECT received: the will is discarded [MQTT-3.14.4-3].
    Graceful,
    KeepAliveTimeout,
    ConnectTimeout,
    Protocol(String),
    Socket(String),
    /// The peer closed the socket without DISCONNECT.
    PeerClosed,
    /// The admin API disconnected it.
    Forced,
    /// A new connection with the same client id took the session over [MQTT-3.1.4-2].
    Takeover,
    /// CONNACK with a refusal code was sent.
    Refused(ConnectReturnCode),
    /// The broker is stopping.
    Shutdown,
}

impl CloseReason {
    fn publishes_will(&self) -> bool {
        !matches!(self, CloseReason::Graceful | CloseReason::Shutdown)
    }

    fn kind(&self) -> DisconnectKind {
        match self {
            CloseReason::Graceful => DisconnectKind::Graceful,
            CloseReason::KeepAliveTimeout => DisconnectKind::KeepAliveTimeout,
            CloseReason::ConnectTimeout | CloseReason::Protocol(_) | CloseReason::Refused(_) => {
                DisconnectKind::ProtocolError
            }
            CloseReason::Socket(_) | CloseReason::PeerClosed => DisconnectKind::SocketError,
            CloseReason::Forced => DisconnectKind::Forced,
            CloseReason::Takeover => DisconnectKind::Takeover,
            CloseReason::Shutdown => DisconnectKind::Shutdown,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Graceful => write!(f, "graceful (DISCONNECT)"),
            CloseReason::KeepAliveTimeout => write!(f, "keep-alive timeout"),
            CloseReason::ConnectTimeout => write!(f, "no CONNECT in time"),
            CloseReason::Protocol(why) => write!(f, "protocol error: {why}"),
            CloseReason::Socket(why) => write!(f, "socket error: {why}"),
            CloseReason::PeerClosed => {
                write!(f, "connection closed by the client without DISCONNECT")
            }
            CloseReason::Forced => write!(f, "forced disconnect"),
            CloseReason::Takeover => write!(f, "session taken over by a new connection"),
            CloseReason::Refused(code) => write!(f, "refused with CONNACK {:#04x}", *code as u8),
            CloseReason::Shutdown => write!(f, "broker shutdown"),
        }
    }
}

/// Everything a shard needs from outside, handed over once at start.
pub struct ShardContext {
    pub me: usize,
    pub workers: usize,
    pub settings: Arc<Settings>,
    pub registry: Registry,
    pub auth: AuthHandle,
    pub users: UserTable,
    pub handle: WorkerHandle,
    pub metrics: Arc<WorkerMetrics>,
    pub topic_list: Arc<TopicList>,
    pub events: EventBus,
    /// The worker's own inbox, peeked right after each socket read (see [`Shard::take_early`]).
    pub inbox: Receiver<WorkerMsg>,
    /// Every worker's counters, indexed by worker: their connection counts balance placement.
    pub loads: Arc<[Arc<WorkerMetrics>]>,
}

/// Epochs are the broker's own numbers (a counter above the worker index), not client input, so a
/// multiply-shift is hash enough; the shift brings high product bits, which depend on every input
/// bit, down to the bucket index.
#[derive(Default)]
struct EpochHasher(u64);

impl std::hash::Hasher for EpochHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(self.0 ^ u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

/// A live connection and its session on their way to another worker (see [`Shard::placement`]).
pub struct Moving {
    conn: Conn,
    session: Box<Session>,
}

pub struct Shard {
    cx: ShardContext,
    conns: Slab<Conn>,
    /// Boxed: the map's table keeps spare buckets (up to half of it), which then cost a pointer each
    /// rather than a whole session.
    sessions: HashMap<ClientId, Box<Session>>,
    /// Client ids whose home is this shard but whose session moved to another worker (placement), with
    /// that worker: a new CONNECT with the id is forwarded there. Removed on the worker's `Gone`.
    moved: HashMap<ClientId, usize>,
    /// The client id of each session, by epoch: deliveries name sessions by epoch.
    by_epoch: HashMap<u64, ClientId, BuildHasherDefault<EpochHasher>>,
    /// (deadline, slot, generation); entries whose time no longer equals the connection's `timer_at`
    /// are stale and skipped. One entry per connection at most.
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Connections with unread bytes (their read budget ran out, or reading resumes after auth).
    ready: VecDeque<(usize, u32)>,
    /// Connections with bytes to write this turn.
    dirty: Vec<(usize, u32)>,
    scratch: Vec<u8>,
    next_epoch: u64,
    /// Inbox messages taken in right after a socket read. Anything in the inbox at that moment was sent
    /// before the bytes just read were written (e.g. the subscribe whose SUBACK made a client publish),
    /// so the worker handles these before the envelopes those bytes produce.
    early: Vec<WorkerMsg>,
    /// Set by the worker while some worker's inbox is over its high-water mark: connections that
    /// publish are not read (their TCP windows fill and their clients slow down) until it drains.
    /// Connections that only subscribe, acknowledge and ping are still read, so the backlog drains.
    throttled: bool,
    /// Connected sessions whose queue is over half of `max_queued_messages` (see `update_pressure`).
    pressured_sessions: usize,
    /// (start of the current second, QoS 2 completion events emitted in it).
    qos2_events: (Instant, u32),
    /// Empty write buffers with their capacity, for reuse (see [`SPARE_WBUFS`]).
    spare_wbufs: Vec<Vec<u8>>,
    /// Wall-clock time of the bytes being parsed: the publish time of the messages they carry (one
    /// clock read per socket read, not per message).
    wall: SystemTime,
}

impl Shard {
    pub fn new(cx: ShardContext) -> Shard {
        Shard {
            cx,
            conns: Slab::default(),
            sessions: HashMap::new(),
            moved: HashMap::new(),
            by_epoch: HashMap::default(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            dirty: Vec::new(),
            scratch: vec![0; SCRATCH_SIZE],
            next_epoch: 1,
            early: Vec::new(),
            throttled: false,
            pressured_sessions: 0,
            qos2_events: (Instant::now(), 0),
            wall: SystemTime::now(),
            spare_wbufs: Vec::new(),
        }
    }

    // ----- loop plumbing -------------------------------------------------------------------------------

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn set_topic_list(&mut self, list: Arc<TopicList>) {
        self.cx.topic_list = list;
    }

    pub fn accept(&mut self, stream: TcpStream, peer: SocketAddr, now: Instant) {
        let deadline = now + self.cx.settings.limits.connect_timeout;
        let Some((slot, gen)) = self.insert(Conn::new(stream, peer, now, deadline)) else {
            return;
        };
        self.schedule(slot, gen);
        self.mark_ready(slot, gen);
        log::debug!("{peer}: accepted on worker {}", self.cx.me);
    }

    /// A connection arriving from another worker with its accepted CONNECT. At the client id's home it
    /// goes on to the worker the session moved to, if it did; there, it goes back home if that session
    /// has ended meanwhile (the `Gone` saying so is then ahead of it in the same channel).
    pub fn adopt(&mut self, h: Handoff, out: &mut Outbox, now: Instant) {
        let client = h.connect.client_id.as_str();
        match h.route {
            Route::ToHome => {
                if let Some(&to) = self.moved.get(client) {
                    out.send_later(
                        to,
                        WorkerMsg::Handoff(Box::new(Handoff {
                            route: Route::ToMoved,
                            ..h
                        })),
                    );
                    return;
                }
            }
            Route::ToMoved => {
                if !self.sessions.contains_key(client) {
                    let home = home_of(client, self.cx.workers);
                    out.send_later(
                        home,
                        WorkerMsg::Handoff(Box::new(Handoff {
                            route: Route::Bounced,
                            ..h
                        })),
                    );
                    return;
                }
            }
            Route::Bounced => {
                self.moved.remove(client);
            }
        }
        let Handoff {
            stream,
            peer,
            connect,
            leftover,
            route: _,
        } = h;
        let mut conn = Conn::new(stream, peer, now, now);
        conn.rbuf = leftover;
        let Some((slot, gen)) = self.insert(conn) else {
            return;
        };
        self.attach(slot, gen, connect, out, now);
        self.parse_buffered(slot, gen, out, now);
        self.mark_ready(slot, gen);
    }

    fn insert(&mut self, conn: Conn) -> Option<(usize, u32)> {
        let peer = conn.peer;
        let (slot, gen) = self.conns.insert(conn);
        let c = self.conns.get_mut(slot, gen)?;
        if let Err(e) = self
            .cx
            .registry
            .register(&mut c.stream, Token(slot), Interest::READABLE)
        {
            log::warn!("{peer}: cannot register the connection: {e}");
            self.conns.remove(slot, gen);
            return None;
        }
        self.cx.metrics.connection_opened();
        Some((slot, gen))
    }

    pub fn on_socket_event(
        &mut self,
        slot: usize,
        ev: SocketEvent,
        out: &mut Outbox,
        now: Instant,
    ) {
        let Some((gen, _)) = self.conns.current(slot) else {
            return;
        };
        if ev.writable {
            self.flush_conn(slot, gen, out);
        }
        if ev.readable || ev.closing {
            self.read_conn(slot, gen, out, now, ev.closing);
        }
    }

    /// Gives connections whose read budget ran out last turn another turn.
    pub fn continue_reads(&mut self, out: &mut Outbox, now: Instant) {
        for _ in 0..self.ready.len() {
            let Some((slot, gen)) = self.ready.pop_front() else {
                break;
            };
            if let Some(c) = self.conns.get_mut(slot, gen) {
                c.in_ready = false;
                self.read_conn(slot, gen, out, now, true);
            }
        }
    }

    fn mark_ready(&mut self, slot: usize, gen: u32) {
        if let Some(c) = self.conns.get_mut(slot, gen) {
            if !c.in_ready {
                c.in_ready = true;
                self.ready.push_back((slot, gen));
            }
        }
    }

    /// Closes connections whose deadline passed: keep-alive timeouts and CONNECT timeouts.
    pub fn expire(&mut self, now: Instant, out: &mut Outbox) {
        while let Some(&Reverse((at, slot, gen))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(slot, gen) else {
                continue;
            };
            if c.timer_at != Some(at) {
                continue;
            }
            c.timer_at = None;
            match c.deadline {
                Some(d) if d <= now => {
                    let reason = match c.phase {
                        Phase::Connected(_) => CloseReason::KeepAliveTimeout,
                        _ => CloseReason::ConnectTimeout,
                    };
                    self.close(slot, gen, reason, out);
                }
                Some(_) => self.schedule(slot, gen),
                None => {}
            }
        }
    }

    /// Makes sure the connection's deadline has a timer entry no later than it.
    fn schedule(&mut self, slot: usize, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let Some(d) = c.deadline else { return };
        if c.timer_at.is_none_or(|t| d < t) {
            c.timer_at = Some(d);
            self.timers.push(Reverse((d, slot, gen)));
        }
    }

    /// Writes what each dirty connection has pending: one write call per connection per turn, however
    /// many packets were queued for it.
    pub fn flush_writes(&mut self, out: &mut Outbox) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for (slot, gen) in dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(slot, gen) {
                c.dirty = false;
                self.flush_conn(slot, gen, out);
            }
        }
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Whether the next poll must not wait: reads left over or bytes queued during the last flush.
    pub fn take_early(&mut self) -> Vec<WorkerMsg> {
        std::mem::take(&mut self.early)
    }

    pub fn has_pending_work(&self) -> bool {
        !self.dirty.is_empty() || (!self.ready.is_empty() && !self.throttled)
    }

    pub fn throttled(&self) -> bool {
        self.throttled
    }

    /// Connections wait to be read only because of throttling.
    pub fn has_throttled_reads(&self) -> bool {
        self.throttled && !self.ready.is_empty()
    }

    pub fn set_throttled(&mut self, throttled: bool) {
        if throttled != self.throttled {
            log::debug!(
                "worker {}: reading from publishers {}",
                self.cx.me,
                if throttled { "paused" } else { "resumed" }
            );
        }
        self.throttled = throttled;
    }

    pub fn shutdown(&mut self) {
        for (slot, gen) in self.conns.keys() {
            if let Some(mut c) = self.conns.remove(slot, gen) {
                let _ = c.stream.write(&c.wbuf);
                let _ = self.cx.registry.deregister(&mut c.stream);
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                self.cx.metrics.connection_closed();
            }
        }
    }
}

// ----- reading and parsing ---------------------------------------------------------------------------

/// What one readiness event reports for a connection.
#[derive(Clone, Copy, Debug)]
pub struct SocketEvent {
    pub readable: bool,
    pub writable: bool,
    /// The peer closed its sending side, or the socket has an error.
    pub closing: bool,
}

impl Shard {
    /// `until_blocked`: read until the socket says WouldBlock (or EOF) even after a short read: the
    /// event already reported the peer's close (no later event will), or there is no event at all.
    fn read_conn(
        &mut self,
        slot: usize,
        gen: u32,
        out: &mut Outbox,
        now: Instant,
        until_blocked: bool,
    ) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut budget = READ_BUDGET;
        while let Some(c) = self.conns.get_mut(slot, gen) {
            if !matches!(c.phase, Phase::AwaitConnect | Phase::Connected(_)) {
                // Paused while credentials are checked; `auth_done` resumes reading.
                break;
            }
            // A connection whose own session is pressured is always read: its acknowledgements are what
            // drains the queue, even if it publishes too.
            let draining = match &c.phase {
                Phase::Connected(id) => self.sessions.get(id).is_some_and(|s| s.pressured),
                _ => false,
            };
            if c.publisher && !draining && (self.throttled || out.cost() > TURN_OUTPUT_BUDGET) {
                self.mark_ready(slot, gen);
                break;
            }
            // The start of a packet carried over from the last read goes in front of the new bytes, so
            // the packet completes in the scratch buffer: the carried part is copied once, rather than
            // every byte read being appended to the connection's own buffer. (The copy stays in `rbuf`
            // until the read succeeds.) A longer carried part, of a packet larger than a read, is
            // completed in `rbuf` instead.
            let carried = c.rbuf.len();
            let in_scratch = carried <= SCRATCH_SIZE - READ_SIZE;
            let start = if in_scratch { carried } else { 0 };
            scratch[..start].copy_from_slice(&c.rbuf[..start]);
            match c.stream.read(&mut scratch[start..start + READ_SIZE]) {
                Ok(0) => {
                    self.close(slot, gen, CloseReason::PeerClosed, out);
                    break;
                }
                Ok(n) => {
                    self.cx.metrics.add_bytes_in(n);
                    self.early
                        .extend(self.cx.inbox.try_iter().take(EARLY_LIMIT));
                    if in_scratch {
                        c.rbuf.clear();
                        let end = start + n;
                        let used = self.parse(slot, gen, &scratch[..end], out, now);
                        if let Some(c) = self.conns.get_mut(slot, gen) {
                            c.rbuf.extend_from_slice(&scratch[used..end]);
                            if c.rbuf.is_empty() {
                                // Idle connections hold no read buffer.
                                c.rbuf = Vec::new();
                            }
                        }
                    } else {
                        c.rbuf.extend_from_slice(&scratch[..n]);
                        self.parse_buffered(slot, gen, out, now);
                    }
                    self.after_parse(slot, gen, out, now);
                    if n < READ_SIZE && !until_blocked {
                        // A short read drained the socket: the edge-triggered poll reports the next
                        // bytes, or the peer's close, as a new event (epoll(7)), so the read that would
                        // say WouldBlock is saved, one system call per event.
                        break;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.mark_ready(slot, gen);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(slot, gen, CloseReason::Socket(e.to_string()), out);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Parses the connection's own buffer (bytes that arrived split, or came with a handoff).
    fn parse_buffered(&mut self, slot: usize, gen: u32, out: &mut Outbox, now: Instant) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let buf = std::mem::take(&mut c.rbuf);
        let used = self.parse(slot, gen, &buf, out, now);
        if let Some(c) = self.conns.get_mut(slot, gen) {
            let mut buf = buf;
            buf.drain(..used);
            if buf.is_empty() {
                buf = Vec::new();
            }
            c.rbuf = buf;
            if let Some(to) = c.moving_to {
                self.move_conn(slot, gen, to, out);
            }
        }
    }

    /// Handles every complete packet in `data`; returns how many bytes were consumed. Stops early when
    /// the connection closes or leaves the reading phases (CONNECT accepted or under authentication).
    fn parse(
        &mut self,
        slot: usize,
        gen: u32,
        data: &[u8],
        out: &mut Outbox,
        now: Instant,
    ) -> usize {
        let max = self.cx.settings.limits.max_packet_size;
        let mut pos = 0;
        self.wall = SystemTime::now();
        loop {
            let Some(c) = self.conns.get_mut(slot, gen) else {
                return pos;
            };
            let connecting = matches!(c.phase, Phase::AwaitConnect);
            if (!connecting && !matches!(c.phase, Phase::Connected(_))) || c.moving_to.is_some() {
                return pos;
            }
            let rest = &data[pos..];
            let frame = match protocol::frame(rest, max) {
                Ok(Some(f)) => f,
                Ok(None) => return pos,
                Err(e) => {
                    self.close(slot, gen, CloseReason::Protocol(e.to_string()), out);
                    return pos;
                }
            };
            // Decided from the fixed header alone, so garbage is refused without waiting for (and
            // buffering) a body of up to max_packet_size that its "remaining length" announces.
            let header_error = match protocol::check_first_byte(frame.first_byte) {
                Err(e) => Some(e.to_string()),
                Ok(()) if connecting && frame.packet_type() != 1 => Some(format!(
                    "packet type {} before CONNECT [MQTT-3.1.0-1]",
                    frame.packet_type()
                )),
                Ok(()) => None,
            };
            if let Some(why) = header_error {
                self.close(slot, gen, CloseReason::Protocol(why), out);
                return pos;
            }
            if rest.len() < frame.total_len() {
                return pos;
            }
            let bytes = &rest[..frame.total_len()];
            let decoded = protocol::decode_reusing(&frame, bytes, c.last_topic.as_ref());
            if let Ok(Packet::Publish(p)) = &decoded {
                if !c
                    .last_topic
                    .as_ref()
                    .is_some_and(|t| Arc::ptr_eq(t, &p.topic))
                {
                    c.last_topic = Some(p.topic.clone());
                }
            }
            if c.may_move {
                if let Ok(packet) = &decoded {
                    if let Some(to) = self.placement(slot, gen, packet) {
                        // Not consumed: the packet moves with the connection and is handled there.
                        if let Some(c) = self.conns.get_mut(slot, gen) {
                            c.moving_to = Some(to);
                        }
                        return pos;
                    }
                }
            }
            pos += frame.total_len();
            match decoded {
                Ok(packet) => self.on_packet(slot, gen, packet, out, now),
                Err(e) => {
                    if connecting && e.is_unsupported_protocol_level() {
                        // [MQTT-3.1.2-2]: answer 0x01, then close.
                        self.refuse(
                            slot,
                            gen,
                            ConnectReturnCode::UnacceptableProtocolVersion,
                            out,
                        );
                    } else {
                        self.close(slot, gen, CloseReason::Protocol(e.to_string()), out);
                    }
                    return pos;
                }
            }
        }
    }

    /// A CONNECT accepted without waiting for the auth pool is acted on once parsing has stopped, so the
    /// bytes after it are in `rbuf` and travel with the connection if it moves.
    fn after_parse(&mut self, slot: usize, gen: u32, out: &mut Outbox, now: Instant) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if matches!(c.phase, Phase::Accepted(_)) {
            self.connect_accepted(slot, gen, out, now);
        } else if let Some(to) = c.moving_to {
            self.move_conn(slot, gen, to, out);
        }
    }

    fn on_packet(&mut self, slot: usize, gen: u32, packet: Packet, out: &mut Outbox, now: Instant) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        c.last_packet = now;
        if c.keep_alive > 0 {
            c.deadline = Some(now + keep_alive_window(c.keep_alive));
        }
        let client = match &c.phase {
            Phase::AwaitConnect => {
                match packet {
                    Packet::Connect(connect) => self.on_connect(slot, gen, connect, out),
                    other => {
                        let why = format!("{} before CONNECT [MQTT-3.1.0-1]", other.name());
                        self.close(slot, gen, CloseReason::Protocol(why), out);
                    }
                }
                return;
            }
            Phase::Connected(id) => id.clone(),
            Phase::Authenticating(_) | Phase::Accepted(_) => return,
        };
        match packet {
            Packet::Publish(p) => self.on_publish(slot, gen, &client, p, out),
            Packet::PubAck(pid) => {
                if self.session(&client).is_some_and(|s| s.on_puback(pid)) {
                    self.fill_window(&client);
                }
            }
            Packet::PubRec(pid) => {
                if self.session(&client).is_some_and(|s| s.on_pubrec(pid)) {
                    self.write(slot, gen, &Packet::PubRel(pid));
                }
            }
            Packet::PubRel(pid) => {
                if self.session(&client).is_some_and(|s| s.release_qos2(pid)) {
                    self.qos2_event(&client, pid, "received", now);
                }
                self.write(slot, gen, &Packet::PubComp(pid));
            }
            Packet::PubComp(pid) => {
                if self.session(&client).is_some_and(|s| s.on_pubcomp(pid)) {
                    self.qos2_event(&client, pid, "delivered", now);
                    self.fill_window(&client);
                }
            }
            Packet::Subscribe(sub) => self.on_subscribe(slot, gen, &client, sub, out),
            Packet::Unsubscribe(unsub) => self.on_unsubscribe(slot, gen, &client, unsub, out),
            Packet::PingReq => self.write(slot, gen, &Packet::PingResp),
            Packet::Disconnect => {
                if let Some(c) = self.conns.get_mut(slot, gen) {
                    c.will = None; // [MQTT-3.14.4-3]
                }
                self.close(slot, gen, CloseReason::Graceful, out);
            }
            Packet::Connect(_) => {
                let why = "second CONNECT on a connection [MQTT-3.1.0-2]".to_string();
                self.close(slot, gen, CloseReason::Protocol(why), out);
            }
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => {
                let why = format!("{} is a server-to-client packet", other.name());
                self.close(slot, gen, CloseReason::Protocol(why), out);
            }
        }
    }

    /// At most [`QOS2_EVENTS_PER_SEC`] per worker and second: enough to watch an exchange complete in
    /// the admin console, never a flood.
    fn qos2_event(
        &mut self,
        client: &ClientId,
        pid: PacketId,
        direction: &'static str,
        now: Instant,
    ) {
        let (start, count) = &mut self.qos2_events;
        if now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *count) = (now, 0);
        }
        if *count < QOS2_EVENTS_PER_SEC {
            *count += 1;
            let client_id = client.to_string();
            self.cx.events.emit(EventKind::Qos2Completed {
                client_id,
                packet_id: pid.get(),
                direction,
            });
        }
    }

    fn session(&mut self, client: &ClientId) -> Option<&mut Session> {
        self.sessions.get_mut(client).map(|s| &mut **s)
    }

    fn insert_session(&mut self, s: Box<Session>) {
        self.by_epoch.insert(s.epoch, s.client_id.clone());
        self.sessions.insert(s.client_id.clone(), s);
    }

    fn remove_session(&mut self, client: &ClientId) -> Option<Box<Session>> {
        let s = self.sessions.remove(client)?;
        self.by_epoch.remove(&s.epoch);
        Some(s)
    }
}

/// 1.5 × keep alive [MQTT-3.1.2-24].
fn keep_alive_window(keep_alive: u16) -> Duration {
    Duration::from_millis(u64::from(keep_alive) * 1500)
}

// ----- CONNECT, sessions, close ----------------------------------------------------------------------

impl Shard {
    fn on_connect(&mut self, slot: usize, gen: u32, mut connect: Connect, out: &mut Outbox) {
        if connect.client_id.is_empty() {
            if !connect.clean_session {
                // [MQTT-3.1.3-8]
                log::warn!("refused a client with an empty client id without clean session");
                self.refuse(slot, gen, ConnectReturnCode::IdentifierRejected, out);
                return;
            }
            connect.client_id = self.assign_client_id(); // [MQTT-3.1.3-6]
        }
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let peer = c.peer;
        c.level = Some(connect.level);

        let accounts = !self.cx.users.read().is_empty();
        let needs_check =
            connect.username.is_some() && (accounts || !self.cx.settings.allow_anonymous);
        if needs_check {
            let job = AuthJob {
                conn: ConnRef {
                    worker: self.cx.me,
                    slot,
                    gen,
                },
                reply_to: self.cx.handle.clone(),
                username: connect.username.clone().unwrap_or_default(),
                password: connect.password.clone().unwrap_or_default(),
            };
            c.phase = Phase::Authenticating(Box::new(connect));
            // The CONNECT came in time; the wait for the auth pool is bounded by its queue (0x03 when
            // full), not by the connect timeout, which would drop the connection without a CONNACK.
            c.deadline = None;
            if self.cx.auth.submit(job).is_err() {
                log::warn!("{peer}: refused: the auth pool is saturated");
                self.refuse(slot, gen, ConnectReturnCode::ServerUnavailable, out);
            }
        } else if connect.username.is_none() && !self.cx.settings.allow_anonymous {
            log::warn!(
                "{peer}: refused client {}: anonymous access is off",
                connect.client_id
            );
            self.refuse(slot, gen, ConnectReturnCode::NotAuthorized, out);
        } else {
            c.phase = Phase::Accepted(Box::new(connect));
        }
    }

    fn assign_client_id(&mut self) -> String {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.next_epoch += 1;
        format!(
            "shardmq-{:x}-{:x}-{:x}",
            self.cx.me,
            nanos & 0xffff_ffff_ffff,
            self.next_epoch
        )
    }

    pub fn auth_done(&mut self, conn: ConnRef, verdict: Verdict, out: &mut Outbox, now: Instant) {
        let (slot, gen) = (conn.slot, conn.gen);
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let Phase::Authenticating(connect) = std::mem::replace(&mut c.phase, Phase::AwaitConnect)
        else {
            return;
        };
        match verdict {
            Verdict::Accepted => {
                c.phase = Phase::Accepted(connect);
                self.connect_accepted(slot, gen, out, now);
            }
            Verdict::BadCredentials => {
                log::warn!(
                    "{}: refused client {}: bad user name or password for `{}`",
                    c.peer,
                    connect.client_id,
                    connect.username.as_deref().unwrap_or("")
                );
                self.refuse(slot, gen, ConnectReturnCode::BadUserNameOrPassword, out);
            }
        }
    }

    /// Attaches here if this is the client id's home worker, else moves the connection there.
    fn connect_accepted(&mut self, slot: usize, gen: u32, out: &mut Outbox, now: Instant) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let Phase::Accepted(connect) = std::mem::replace(&mut c.phase, Phase::AwaitConnect) else {
            return;
        };
        let home = home_of(&connect.client_id, self.cx.workers);
        let (dest, route) = if home != self.cx.me {
            (home, Route::ToHome)
        } else if let Some(&to) = self.moved.get(connect.client_id.as_str()) {
            (to, Route::ToMoved)
        } else {
            self.attach(slot, gen, *connect, out, now);
            self.parse_buffered(slot, gen, out, now);
            self.mark_ready(slot, gen);
            return;
        };
        let Some(mut c) = self.conns.remove(slot, gen) else {
            return;
        };
        self.cx.metrics.connection_closed();
        if let Err(e) = self.cx.registry.deregister(&mut c.stream) {
            log::warn!("{}: cannot move the connection: {e}", c.peer);
            return;
        }
        out.send_later(
            dest,
            WorkerMsg::Handoff(Box::new(Handoff {
                stream: c.stream,
                peer: c.peer,
                connect: *connect,
                leftover: c.rbuf,
                route,
            })),
        );
    }

    /// Where a fresh session's connection should live, decided by its first PUBLISH or SUBSCRIBE: at
    /// the worker owning that topic's partition (for a SUBSCRIBE, the partition of all its filters, if
    /// they are exact and share one). A publisher and a subscriber of one topic then live on the
    /// same worker as the topic, and their messages cross no thread: at low load each crossing costs
    /// a wake-up and a context switch (measured in the bench's latency scenario: p50 about 20 % lower,
    /// a third less broker CPU). `None`: stay. Balanced by [`PLACEMENT_SLACK`].
    fn placement(&mut self, slot: usize, gen: u32, packet: &Packet) -> Option<usize> {
        let n = self.cx.workers;
        let target = match packet {
            Packet::Publish(p) => Some(partition_of(&p.topic, n)),
            Packet::Subscribe(s) => {
                let mut parts = s.filters.iter().map(|(f, _)| {
                    (!has_wildcard(f) && validate_filter(f).is_ok()).then(|| partition_of(f, n))
                });
                let first = parts.next().flatten();
                parts.all(|p| p == first).then_some(first).flatten()
            }
            // Connections that only ping (or acknowledge) keep waiting for their first topic.
            _ => return None,
        };
        let c = self.conns.get_mut(slot, gen)?;
        c.may_move = false;
        let to = target.filter(|&w| w != self.cx.me)?;
        let Phase::Connected(client) = &c.phase else {
            return None;
        };
        let fresh = self.sessions.get(client).is_some_and(|s| s.is_fresh());
        let load = |w: usize| self.cx.loads[w].connections.load(Ordering::Relaxed);
        (fresh && load(to) < load(self.cx.me) + PLACEMENT_SLACK).then_some(to)
    }

    /// Moves a connection with its (fresh) session to worker `to`; the bytes not yet parsed, starting
    /// with the packet that decided the move, go along and are handled there.
    fn move_conn(&mut self, slot: usize, gen: u32, to: usize, out: &mut Outbox) {
        let Some(mut c) = self.conns.remove(slot, gen) else {
            return;
        };
        self.cx.metrics.connection_closed();
        if let Err(e) = self.cx.registry.deregister(&mut c.stream) {
            // The slot's generation has changed, so a stale event for it only causes a futile read.
            log::warn!("{}: cannot deregister a moving connection: {e}", c.peer);
        }
        let Phase::Connected(client) = &c.phase else {
            return;
        };
        let client = client.clone();
        let Some(mut session) = self.remove_session(&client) else {
            return;
        };
        self.cx.metrics.sessions_changed(-1);
        session.conn = None;
        c.moving_to = None;
        c.dirty = false;
        c.in_ready = false;
        c.write_interest = false;
        c.timer_at = None;
        log::debug!("client {client}: moves to worker {to}, which owns its first topic");
        self.moved.insert(client, to);
        out.send_later(to, WorkerMsg::Move(Box::new(Moving { conn: c, session })));
    }

    /// A connection and session moved here by [`Shard::move_conn`].
    pub fn adopt_moved(&mut self, m: Moving, out: &mut Outbox, now: Instant) {
        let Moving { conn, mut session } = m;
        let client = session.client_id.clone();
        let Some((slot, gen)) = self.insert(conn) else {
            // The socket is gone; so is this fresh session, which nothing else refers to.
            out.send_later(home_of(&client, self.cx.workers), WorkerMsg::Gone(client));
            return;
        };
        session.conn = Some((slot, gen));
        self.insert_session(session);
        self.cx.metrics.sessions_changed(1);
        if let Some(c) = self.conns.get_mut(slot, gen) {
            if !c.wbuf.is_empty() {
                mark_dirty(c, &mut self.dirty, slot, gen);
            }
        }
        self.schedule(slot, gen);
        self.parse_buffered(slot, gen, out, now);
        self.mark_ready(slot, gen);
    }

    /// The session of a client id whose home is here has ended at the worker it had moved to.
    pub fn forget_moved(&mut self, client: &ClientId) {
        self.moved.remove(client);
    }

    /// The worker a session whose home is here has moved to.
    pub fn moved_to(&self, client_id: &str) -> Option<usize> {
        self.moved.get(client_id).copied()
    }

    /// A session that moved here (placement) ended: its home stops forwarding its client id here.
    fn session_ended(&self, client: &ClientId, out: &mut Outbox) {
        let home = home_of(client, self.cx.workers);
        if home != self.cx.me {
            out.send_later(home, WorkerMsg::Gone(client.clone()));
        }
    }

    /// Binds an accepted connection to its session: takes over a live one, resumes a persistent one or
    /// starts a new one; sends CONNACK; resends what was in flight.
    fn attach(&mut self, slot: usize, gen: u32, connect: Connect, out: &mut Outbox, now: Instant) {
        let client: ClientId = connect.client_id.as_str().into();
        if let Some((os, og)) = self.sessions.get(&client).and_then(|s| s.conn) {
            log::info!("client {client}: a new connection takes the session over [MQTT-3.1.4-2]");
            self.close(os, og, CloseReason::Takeover, out);
        }
        // A clean old session was removed by the close above; a persistent one is resumed unless the new
        // connection asks for a clean session [MQTT-3.1.2-4], [MQTT-3.1.2-6].
        let present = !connect.clean_session && self.sessions.contains_key(&client);
        if !present {
            if let Some(old) = self.remove_session(&client) {
                forget_subscriptions(&old, self.cx.workers, out);
            }
            self.next_epoch += 1;
            // Unique across workers (at most 1024 of them): deliveries name sessions by epoch.
            let epoch = (self.next_epoch << 10) | self.cx.me as u64;
            self.insert_session(Box::new(Session::new(
                client.clone(),
                epoch,
                connect.clean_session,
            )));
            self.cx.metrics.sessions_changed(1);
        }
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        session.conn = Some((slot, gen));
        session.username = connect.username.clone();
        c.phase = Phase::Connected(client.clone());
        // Only a session made here, at its home, moves (once): the home then knows where it went.
        c.may_move =
            !present && self.cx.workers > 1 && home_of(&client, self.cx.workers) == self.cx.me;
        c.level = Some(connect.level);
        c.keep_alive = connect.keep_alive;
        c.will = connect.will.map(Box::new);
        c.last_packet = now;
        c.connected_at = SystemTime::now();
        c.deadline = (connect.keep_alive > 0).then(|| now + keep_alive_window(connect.keep_alive));
        log::info!(
            "client {client} connected from {} (MQTT {}, keep alive {}s, clean session {}, session present {present}){}",
            c.peer,
            if connect.level == protocol::ProtocolLevel::V31 { "3.1" } else { "3.1.1" },
            connect.keep_alive,
            connect.clean_session,
            connect.username.as_deref().map(|u| format!(", user {u}")).unwrap_or_default()
        );
        self.cx.events.emit(EventKind::Connected {
            client_id: client.to_string(),
            peer: c.peer,
            username: connect.username,
            clean_session: connect.clean_session,
        });
        queue_packet(
            c,
            &mut self.dirty,
            slot,
            gen,
            &Packet::ConnAck(ConnAck {
                session_present: present,
                code: ConnectReturnCode::Accepted,
            }),
        );
        if present {
            // Resend what was in flight, in order, PUBLISH with DUP or PUBREL [MQTT-4.4.0-1].
            for o in session.inflight() {
                match o.state {
                    OutState::Published => queue_outgoing(c, &mut self.dirty, slot, gen, o, true),
                    OutState::Released => {
                        queue_packet(c, &mut self.dirty, slot, gen, &Packet::PubRel(o.pid))
                    }
                }
            }
        }
        self.schedule(slot, gen);
        self.fill_window(&client);
    }

    fn refuse(&mut self, slot: usize, gen: u32, code: ConnectReturnCode, out: &mut Outbox) {
        self.write(
            slot,
            gen,
            &Packet::ConnAck(ConnAck {
                session_present: false,
                code,
            }),
        );
        self.close(slot, gen, CloseReason::Refused(code), out);
    }

    /// Ends a connection: publishes the will unless the end was graceful, then ends a clean session or
    /// parks a persistent one.
    fn close(&mut self, slot: usize, gen: u32, reason: CloseReason, out: &mut Outbox) {
        let Some(mut c) = self.conns.remove(slot, gen) else {
            return;
        };
        self.cx.metrics.connection_closed();
        let _ = self.cx.registry.deregister(&mut c.stream);
        if !c.wbuf.is_empty() {
            // Best effort, for a CONNACK refusal or the last acknowledgements.
            let _ = c.stream.write(&c.wbuf);
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        let Phase::Connected(client) = c.phase else {
            let client_id = match c.phase {
                Phase::Authenticating(connect) | Phase::Accepted(connect) => {
                    Some(connect.client_id)
                }
                _ => None,
            };
            let code = match reason {
                CloseReason::Refused(code) => Some(code as u8),
                _ => {
                    log::info!(
                        "{}: connection closed before CONNECT completed: {reason}",
                        c.peer
                    );
                    None
                }
            };
            let reason = reason.to_string();
            self.cx.events.emit(EventKind::ConnectRefused {
                peer: c.peer,
                client_id,
                code,
                reason,
            });
            return;
        };
        log::info!("client {client} disconnected from {}: {reason}", c.peer);
        self.cx.events.emit(EventKind::Disconnected {
            client_id: client.to_string(),
            kind: reason.kind(),
            reason: reason.to_string(),
        });
        if reason.publishes_will() {
            if let Some(will) = c.will.take() {
                self.publish_will(&client, *will, out);
            }
        }
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        if session.conn != Some((slot, gen)) {
            return;
        }
        session.conn = None;
        Shard::update_pressure(
            session,
            self.cx.settings.limits.max_queued_messages,
            &mut self.pressured_sessions,
            &self.cx.handle,
        );
        if session.clean {
            if let Some(s) = self.remove_session(&client) {
                forget_subscriptions(&s, self.cx.workers, out);
                self.cx.metrics.sessions_changed(-1);
                self.session_ended(&client, out);
            }
        }
    }

    fn publish_will(&mut self, client: &ClientId, will: LastWill, out: &mut Outbox) {
        self.wall = SystemTime::now();
        let (topic, qos, retain) = (will.topic.clone(), will.qos.as_u8(), will.retain);
        let msg = Publish {
            dup: false,
            qos: will.qos,
            retain,
            topic: will.topic.into(),
            pkid: None,
            payload: will.payload,
        };
        if self.route_publish(client, msg, "will", out) {
            log::info!(
                "will of client {client} published to `{topic}` (QoS {qos}, retain {retain})"
            );
            let client_id = client.to_string();
            self.cx.events.emit(EventKind::WillPublished {
                client_id,
                topic,
                qos,
                retain,
            });
        }
    }

    /// Sends a client's PUBLISH (or will) to its topic's partition, unless the enforced topic list
    /// refuses the topic: then it is dropped, logged and counted. True if routed.
    fn route_publish(
        &mut self,
        client: &ClientId,
        p: Publish,
        what: &str,
        out: &mut Outbox,
    ) -> bool {
        if self.cx.settings.enforce_topics && !self.cx.topic_list.allows_topic(&p.topic) {
            log::warn!(
                "client {client}: {what} to `{}` dropped: the topic is not in the topic list",
                p.topic
            );
            self.cx.metrics.publish_refused();
            self.cx.events.emit(EventKind::PublishRefused {
                client_id: client.to_string(),
                topic: p.topic.to_string(),
                reason: format!("{what} topic not in the topic list"),
            });
            return false;
        }
        let msg = Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            publisher: client.clone(),
            time: self.wall,
        };
        self.cx.metrics.message_in();
        out.push(
            partition_of(&msg.topic, self.cx.workers),
            Envelope::Publish(Arc::new(msg)),
        );
        true
    }
}

/// Removes a session's subscriptions from the partitions that hold them.
fn forget_subscriptions(s: &Session, workers: usize, out: &mut Outbox) {
    for filter in s.subscriptions.keys() {
        route_filter(filter, workers, out, || Envelope::Unsubscribe {
            client: s.client_id.clone(),
            filter: filter.clone(),
        });
    }
}

/// An exact filter lives in its own partition; a wildcard filter in every partition.
fn route_filter(filter: &str, workers: usize, out: &mut Outbox, make: impl Fn() -> Envelope) {
    if has_wildcard(filter) {
        out.push_all(make);
    } else {
        out.push(partition_of(filter, workers), make());
    }
}

// ----- PUBLISH, SUBSCRIBE, delivery ------------------------------------------------------------------

impl Shard {
    fn on_publish(
        &mut self,
        slot: usize,
        gen: u32,
        client: &ClientId,
        p: Publish,
        out: &mut Outbox,
    ) {
        if let Some(c) = self.conns.get_mut(slot, gen) {
            c.publisher = true;
        }
        let pid = p.pkid;
        if let (QoS::ExactlyOnce, Some(pid)) = (p.qos, pid) {
            let first = self
                .sessions
                .get_mut(client)
                .is_some_and(|s| s.receive_qos2(pid));
            if !first {
                // A resend (DUP) of a message already routed: acknowledge only, so it is delivered once.
                self.write(slot, gen, &Packet::PubRec(pid));
                return;
            }
        }
        let qos = p.qos;
        self.route_publish(client, p, "PUBLISH", out);
        match (qos, pid) {
            (QoS::AtLeastOnce, Some(pid)) => self.write(slot, gen, &Packet::PubAck(pid)),
            (QoS::ExactlyOnce, Some(pid)) => self.write(slot, gen, &Packet::PubRec(pid)),
            _ => {}
        }
    }

    fn on_subscribe(
        &mut self,
        slot: usize,
        gen: u32,
        client: &ClientId,
        sub: Subscribe,
        out: &mut Outbox,
    ) {
        let workers = self.cx.workers;
        let enforce = self.cx.settings.enforce_topics;
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        let mut codes = Vec::with_capacity(sub.filters.len());
        for (filter, qos) in sub.filters {
            let refusal = match validate_filter(&filter) {
                Err(e) => Some(format!("invalid filter: {e}")),
                Ok(()) if enforce && !self.cx.topic_list.allows_filter(&filter) => {
                    Some("no topic in the topic list matches it".to_string())
                }
                Ok(()) => None,
            };
            if let Some(why) = refusal {
                log::warn!("client {client}: subscription to `{filter}` refused (0x80): {why}");
                self.cx.metrics.subscription_refused();
                self.cx.events.emit(EventKind::SubscriptionRefused {
                    client_id: client.to_string(),
                    filter,
                    reason: why,
                });
                codes.push(SubAckCode::Failure);
                continue;
            }
            let filter: Arc<str> = filter.into();
            log::debug!(
                "client {client}: subscribed to `{filter}` at QoS {}",
                qos.as_u8()
            );
            session.subscriptions.insert(filter.clone(), qos);
            self.cx.events.emit(EventKind::SubscriptionAccepted {
                client_id: client.to_string(),
                filter: filter.to_string(),
                qos: qos.as_u8(),
            });
            let (c, epoch, home) = (session.client_id.clone(), session.epoch, self.cx.me);
            route_filter(&filter, workers, out, || Envelope::Subscribe {
                client: c.clone(),
                epoch,
                filter: filter.clone(),
                qos,
                home,
            });
            codes.push(SubAckCode::Granted(qos));
        }
        // Written before the partitions act on the subscribe, so SUBACK precedes the retained messages.
        self.write(
            slot,
            gen,
            &Packet::SubAck(SubAck {
                pkid: sub.pkid,
                codes,
            }),
        );
    }

    fn on_unsubscribe(
        &mut self,
        slot: usize,
        gen: u32,
        client: &ClientId,
        unsub: Unsubscribe,
        out: &mut Outbox,
    ) {
        let workers = self.cx.workers;
        if let Some(session) = self.sessions.get_mut(client) {
            for filter in &unsub.filters {
                if let Some((f, _)) = session.subscriptions.remove_entry(filter.as_str()) {
                    self.cx.events.emit(EventKind::Unsubscribed {
                        client_id: client.to_string(),
                        filter: f.to_string(),
                    });
                    route_filter(&f, workers, out, || Envelope::Unsubscribe {
                        client: client.clone(),
                        filter: f.clone(),
                    });
                }
            }
        }
        self.write(slot, gen, &Packet::UnsubAck(unsub.pkid));
    }

    /// A message from a partition for a session of this shard.
    pub fn deliver(&mut self, d: Delivery, out: &mut Outbox) {
        let limits = &self.cx.settings.limits;
        // An epoch that is gone (the session ended, or a new one replaced it) finds nothing.
        let Some(session) = self
            .by_epoch
            .get(&d.epoch)
            .and_then(|client| self.sessions.get_mut(client))
        else {
            return;
        };
        if session.epoch != d.epoch {
            return;
        }
        let mut conn = session
            .conn
            .and_then(|(slot, gen)| self.conns.get_mut(slot, gen).map(|c| (slot, gen, c)));
        if d.qos == QoS::AtMostOnce {
            if let Some((_, _, c)) = &conn {
                if c.wbuf.len() >= limits.max_write_buffer {
                    // A subscriber that does not read loses QoS 0 messages rather than growing the broker.
                    self.cx.metrics.dropped();
                    return;
                }
            }
        }
        match session.offer(
            &d.msg,
            d.qos,
            d.retain,
            conn.is_some(),
            limits.max_inflight,
            limits.max_queued_messages,
        ) {
            Offer::Send(pid) => {
                if let Some((slot, gen, c)) = conn.as_mut() {
                    reuse_spare(&mut self.spare_wbufs, c, d.msg.payload.len());
                    queue_publish(
                        c,
                        &mut self.dirty,
                        *slot,
                        *gen,
                        &d.msg,
                        d.qos,
                        d.retain,
                        false,
                        pid,
                    );
                    self.cx.metrics.message_out();
                    if c.wbuf.len() >= EARLY_FLUSH {
                        // A burst for one subscriber: write now rather than hold it all until the end
                        // of the turn (and drop QoS 0 messages at max_write_buffer meanwhile).
                        let (slot, gen) = (*slot, *gen);
                        self.flush_conn(slot, gen, out);
                    }
                }
            }
            Offer::Queued => Shard::update_pressure(
                session,
                limits.max_queued_messages,
                &mut self.pressured_sessions,
                &self.cx.handle,
            ),
            Offer::Dropped => {
                if d.qos != QoS::AtMostOnce {
                    log::debug!(
                        "client {}: queue full, message on `{}` dropped",
                        session.client_id,
                        d.msg.topic
                    );
                }
                self.cx.metrics.dropped();
            }
        }
    }

    /// Keeps `pressured_sessions` and this worker's pressure flag in step with one session: pressured
    /// once connected with more than half of `max_queued_messages` (at most [`PRESSURE_QUEUED`]), or
    /// more than [`PRESSURE_QUEUED_BYTES`] of payload, waiting, and until that is down to a half again,
    /// so publishers resume while the queue still holds work for the subscriber. Offline sessions never
    /// count: nothing could drain them, so they drop (and count) what overflows instead. Takes the
    /// fields it needs, so callers holding the session need not look it up again.
    fn update_pressure(
        s: &mut Session,
        max_queued: usize,
        pressured_sessions: &mut usize,
        handle: &WorkerHandle,
    ) {
        let high = (max_queued / 2).min(PRESSURE_QUEUED);
        let (limit, bytes) = if s.pressured {
            (high / 2, PRESSURE_QUEUED_BYTES / 2)
        } else {
            (high, PRESSURE_QUEUED_BYTES)
        };
        let now = s.conn.is_some() && (s.queued_len() > limit || s.queued_bytes() > bytes);
        if now != s.pressured {
            s.pressured = now;
            if now {
                *pressured_sessions += 1;
            } else {
                *pressured_sessions -= 1;
            }
            handle.set_pressure(*pressured_sessions > 0);
        }
    }

    /// Moves queued messages into the in-flight window as acknowledgements free it.
    fn fill_window(&mut self, client: &ClientId) {
        let max_inflight = self.cx.settings.limits.max_inflight;
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        let Some((slot, gen)) = session.conn else {
            return;
        };
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        while let Some(o) = session.next_queued(max_inflight) {
            reuse_spare(&mut self.spare_wbufs, c, o.msg.payload.len());
            queue_outgoing(c, &mut self.dirty, slot, gen, &o, false);
            self.cx.metrics.message_out();
        }
        Shard::update_pressure(
            session,
            self.cx.settings.limits.max_queued_messages,
            &mut self.pressured_sessions,
            &self.cx.handle,
        );
    }

    fn write(&mut self, slot: usize, gen: u32, packet: &Packet) {
        if let Some(c) = self.conns.get_mut(slot, gen) {
            queue_packet(c, &mut self.dirty, slot, gen, packet);
        }
    }

    fn flush_conn(&mut self, slot: usize, gen: u32, out: &mut Outbox) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let mut written = 0;
        let mut failure = None;
        while written < c.wbuf.len() {
            match c.stream.write(&c.wbuf[written..]) {
                Ok(0) => {
                    failure = Some("the socket accepts no more bytes".to_string());
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        self.cx.metrics.add_bytes_out(written);
        if let Some(why) = failure {
            c.wbuf.clear();
            self.close(slot, gen, CloseReason::Socket(why), out);
            return;
        }
        c.wbuf.drain(..written);
        let pending = !c.wbuf.is_empty();
        if !pending && (c.wbuf.capacity() > KEEP_WBUF_CAPACITY || !c.publisher) {
            // Idle connections hold no write buffer; a busy publisher keeps a small one for its acks.
            // A large one goes to the worker's spares, for the next connection that writes a lot.
            let buf = std::mem::take(&mut c.wbuf);
            if buf.capacity() > KEEP_WBUF_CAPACITY
                && buf.capacity() <= SPARE_WBUF_CAPACITY
                && self.spare_wbufs.len() < SPARE_WBUFS
            {
                self.spare_wbufs.push(buf);
            }
        }
        if pending != c.write_interest {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .cx
                .registry
                .reregister(&mut c.stream, Token(slot), interest)
            {
                self.close(slot, gen, CloseReason::Socket(e.to_string()), out);
                return;
            }
            c.write_interest = pending;
        }
    }
}

fn queue_packet(
    c: &mut Conn,
    dirty: &mut Vec<(usize, u32)>,
    slot: usize,
    gen: u32,
    packet: &Packet,
) {
    protocol::encode(packet, &mut c.wbuf);
    mark_dirty(c, dirty, slot, gen);
}

/// Gives a connection with no write buffer a spare one before it writes a large message.
fn reuse_spare(spares: &mut Vec<Vec<u8>>, c: &mut Conn, payload: usize) {
    if c.wbuf.capacity() == 0 && payload > KEEP_WBUF_CAPACITY {
        if let Some(buf) = spares.pop() {
            c.wbuf = buf;
        }
    }
}

fn mark_dirty(c: &mut Conn, dirty: &mut Vec<(usize, u32)>, slot: usize, gen: u32) {
    if !c.dirty {
        c.dirty = true;
        dirty.push((slot, gen));
    }
}

#[allow(clippy::too_many_arguments)]
fn queue_publish(
    c: &mut Conn,
    dirty: &mut Vec<(usize, u32)>,
    slot: usize,
    gen: u32,
    msg: &Message,
    qos: QoS,
    retain: bool,
    dup: bool,
    pkid: Option<PacketId>,
) {
    protocol::encode_publish(
        &mut c.wbuf,
        dup,
        qos,
        retain,
        &msg.topic,
        pkid,
        &msg.payload,
    );
    mark_dirty(c, dirty, slot, gen);
}

// ----- internal API ----------------------------------------------------------------------------------

impl Shard {
    pub fn list_clients(&self, now: Instant) -> Vec<ClientInfo> {
        self.sessions
            .values()
            .map(|s| {
                let conn = s.conn.and_then(|(slot, gen)| self.conns.get(slot, gen));
                ClientInfo::new(s, conn, self.cx.me, now)
            })
            .collect()
    }

    /// Closes the client's connection as a forced disconnect (the will is published) and, with
    /// `discard_session`, drops its stored session too. False if the client id is unknown here.
    pub fn force_disconnect(
        &mut self,
        client_id: &str,
        discard_session: bool,
        out: &mut Outbox,
    ) -> bool {
        let Some(session) = self.sessions.get(client_id) else {
            return false;
        };
        let client = session.client_id.clone();
        if let Some((slot, gen)) = session.conn {
            self.close(slot, gen, CloseReason::Forced, out);
        }
        if discard_session {
            if let Some(s) = self.remove_session(&client) {
                forget_subscriptions(&s, self.cx.workers, out);
                self.cx.metrics.sessions_changed(-1);
                self.session_ended(&client, out);
                log::info!("client {client}: stored session discarded");
            }
        }
        true
    }
}

/// A QoS 1/2 message from the session's in-flight window: first sent (`dup` false) or resent on resume.
fn queue_outgoing(
    c: &mut Conn,
    dirty: &mut Vec<(usize, u32)>,
    slot: usize,
    gen: u32,
    o: &Outgoing,
    dup: bool,
) {
    queue_publish(
        c,
        dirty,
        slot,
        gen,
        &o.msg,
        o.qos,
        o.retain,
        dup,
        Some(o.pid),
    );
}
