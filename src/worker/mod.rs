//! Worker threads: each owns one [`Shard`](crate::shard::Shard) (connections and the sessions whose client
//! id hashes to it), one [`Partition`](crate::partition::Partition) (the topics that hash to it) and one
//! `mio::Poll`. Workers talk only by message: this module defines every message that crosses into a worker.
//!
//! Sending and waking are one operation ([`WorkerHandle::send`]) so no one can forget the wake; within a
//! loop turn, envelopes for another worker are gathered in the [`Outbox`] and sent as one batch with one
//! wake per destination.

mod event_loop;

pub use event_loop::{Worker, WAKER_TOKEN};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::Waker;

use crate::auth::Verdict;
use crate::message::{ClientId, Delivery, Message};
use crate::protocol::{Connect, QoS};
use crate::shard::{ConnRef, Moving};
use crate::topic::TopicList;

/// Everything a worker's inbox carries. Inboxes are unbounded; see ARCHITECTURE.md for why each producer
/// is bounded at its source.
pub enum WorkerMsg {
    /// listener → worker: a freshly accepted socket (TCP_NODELAY already set).
    Accept {
        stream: mio::net::TcpStream,
        peer: SocketAddr,
    },
    /// worker → the client id's home worker: a connection whose CONNECT was accepted (authenticated).
    /// Also home → the worker its session moved to, and back (see [`Route`]).
    Handoff(Box<Handoff>),
    /// worker → the worker owning the partition of a fresh session's first topic: the live connection
    /// with its session (see `Shard::placement`). Sent after the turn's batches.
    Move(Box<Moving>),
    /// worker holding a moved session → the client id's home: the session ended, forget where it went.
    /// Sent after the turn's batches, so the partitions already have the session's unsubscribes.
    Gone(ClientId),
    /// auth pool → the worker that asked: the bcrypt verdict for a pending CONNECT.
    AuthDone { conn: ConnRef, verdict: Verdict },
    /// worker → worker: the envelopes of one loop turn, with their [`Envelope::cost`] summed.
    Batch {
        envelopes: Vec<Envelope>,
        cost: usize,
    },

    /// broker handle (admin API) → worker: a query or a command, answered on the enclosed channel.
    Control(Control),
    /// broker → every worker: close every connection and stop.
    Shutdown,
}

/// Work that moves between workers inside a [`WorkerMsg::Batch`] (or stays local, without a channel).
#[derive(Debug)]
pub enum Envelope {
    /// shard → the topic's partition.
    Publish(Arc<Message>),
    /// shard → partition(s): exact filter → the filter's partition; wildcard filter → every partition.
    /// `home` is the worker holding the session, where deliveries go.
    Subscribe {
        client: ClientId,
        epoch: u64,
        filter: Arc<str>,
        qos: QoS,
        home: usize,
    },
    /// shard → the same partition(s) as the subscribe.
    Unsubscribe { client: ClientId, filter: Arc<str> },
    /// partition → the subscriber's home shard.
    Deliver(Delivery),
}

impl Envelope {
    /// What an envelope weighs in a worker's inbox, for backpressure: a fixed overhead, plus the payload
    /// of a PUBLISH (a delivery shares its payload with the retained store and the other deliveries).
    pub fn cost(&self) -> usize {
        const OVERHEAD: usize = 64;
        match self {
            Envelope::Publish(m) => OVERHEAD + m.payload.len() + m.topic.len(),
            _ => OVERHEAD,
        }
    }
}

/// A connection moving to the worker that owns its client id's session.
pub struct Handoff {
    pub stream: mio::net::TcpStream,
    pub peer: SocketAddr,
    /// Client id already assigned when it was empty.
    pub connect: Connect,
    /// Bytes the client sent after CONNECT, read before the move.
    pub leftover: Vec<u8>,
    pub route: Route,
}

/// Where a [`Handoff`] is in its trip to the session of its client id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Accepting worker → the client id's home (`home_of`).
    ToHome,
    /// Home → the worker its session moved to.
    ToMoved,
    /// That worker → home: the session had ended meanwhile (its `Gone` is ahead in the same channel).
    Bounced,
}

/// Queries and commands of the internal API ([`crate::broker::BrokerHandle`]).
pub enum Control {
    ListClients(Sender<Vec<crate::shard::ClientInfo>>),
    /// The topic list changed (created or deleted at run time); acknowledged once in force, so the
    /// change applies to every packet sent after the API call returns.
    TopicList {
        list: Arc<TopicList>,
        reply: Sender<()>,
    },
    Disconnect {
        client_id: String,
        discard_session: bool,
        reply: Sender<bool>,
    },
    History {
        topic: String,
        reply: Sender<Vec<crate::partition::HistoryEntry>>,
    },
    Recent {
        reply: Sender<Vec<crate::partition::RecentTopic>>,
    },
    /// `extra`: listed topic names to report even if nothing was published to them yet.
    TopicStats {
        extra: Arc<Vec<String>>,
        reply: Sender<Vec<crate::partition::TopicStat>>,
    },
    PartitionStats {
        reply: Sender<crate::partition::PartitionStats>,
    },
}

/// A worker's address: its inbox and the waker of its poll, always used together.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: Sender<WorkerMsg>,
    waker: Arc<Waker>,
    /// Total cost of the envelopes waiting in this worker's inbox: added by senders, subtracted by the
    /// worker once handled. Other workers stop reading from publishing clients while it is high.
    backlog: Arc<AtomicUsize>,
    /// Set by the worker itself while one of its connected sessions has more than half of
    /// `max_queued_messages` waiting: publishers pause rather than overflow that queue (a QoS 1/2
    /// message acknowledged to its publisher and then dropped would be lost).
    pressure: Arc<AtomicBool>,
}

impl WorkerHandle {
    pub fn new(tx: Sender<WorkerMsg>, waker: Arc<Waker>) -> WorkerHandle {
        WorkerHandle {
            tx,
            waker,
            backlog: Arc::default(),
            pressure: Arc::default(),
        }
    }

    /// Sends envelopes as one batch, accounting their cost, and wakes. Returns false when the worker
    /// has stopped.
    pub fn send_batch(&self, envelopes: Vec<Envelope>) -> bool {
        let cost = envelopes.iter().map(Envelope::cost).sum();
        self.backlog.fetch_add(cost, Ordering::Relaxed);
        if self.tx.send(WorkerMsg::Batch { envelopes, cost }).is_err() {
            self.backlog.fetch_sub(cost, Ordering::Relaxed);
            return false;
        }
        self.wake();
        true
    }

    /// Called by the worker itself once it has handled a batch.
    pub(crate) fn handled(&self, cost: usize) {
        self.backlog.fetch_sub(cost, Ordering::Relaxed);
    }

    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    pub fn set_pressure(&self, on: bool) {
        self.pressure.store(on, Ordering::Relaxed);
    }

    pub fn pressure(&self) -> bool {
        self.pressure.load(Ordering::Relaxed)
    }

    /// Sends and wakes. Returns false when the worker has stopped.
    pub fn send(&self, msg: WorkerMsg) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        self.waker.wake().is_ok()
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake a worker: {e}");
        }
    }

    /// Messages waiting in the inbox (for stats).
    pub fn depth(&self) -> usize {
        self.tx.len()
    }
}

/// Envelopes per batch beyond which a batch is sent before the end of the turn.
const BATCH_MAX: usize = 1024;

/// Envelopes produced during one loop turn, grouped by destination worker.
pub struct Outbox {
    me: usize,
    remote: Vec<Vec<Envelope>>,
    /// Handoffs, moves and `Gone`s, in the order made; sent after the batches of the same turn.
    msgs: Vec<(usize, WorkerMsg)>,
    /// Envelopes for this worker's own partition or shard: handled in the same turn, no channel.
    pub(crate) local: VecDeque<Envelope>,
    cost: usize,
}

impl Outbox {
    pub fn new(me: usize, workers: usize) -> Outbox {
        Outbox {
            me,
            remote: (0..workers).map(|_| Vec::new()).collect(),
            msgs: Vec::new(),
            local: VecDeque::new(),
            cost: 0,
        }
    }

    pub fn push(&mut self, dest: usize, env: Envelope) {
        self.cost += env.cost();
        if dest == self.me {
            self.local.push_back(env);
        } else {
            self.remote[dest].push(env);
        }
    }

    /// Cost of the envelopes produced since the last [`Outbox::flush`]: a worker stops reading from
    /// publishers for the rest of a turn once one turn has produced a lot (a fan-out to thousands).
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Pushes to every worker (a wildcard subscription lives in every partition).
    pub fn push_all(&mut self, make: impl Fn() -> Envelope) {
        for dest in 0..self.remote.len() {
            self.push(dest, make());
        }
    }

    /// After the batches: a moved session's connection must reach its new worker after the publishes
    /// it sent before moving (the same channel keeps them in order), and a `Gone` after the session's
    /// unsubscribes reach the partitions.
    fn send_msgs(&mut self, peers: &[WorkerHandle]) {
        for (dest, msg) in self.msgs.drain(..) {
            if !peers[dest].send(msg) {
                log::warn!(
                    "worker {dest} has stopped; a handoff, move or `Gone` for it is dropped"
                );
            }
        }
    }

    pub fn send_later(&mut self, dest: usize, msg: WorkerMsg) {
        self.msgs.push((dest, msg));
    }

    /// Sends the batches that have grown to [`BATCH_MAX`] envelopes, mid-turn: the destination starts
    /// on them sooner, and no turn builds (and then frees on another thread) one huge batch.
    pub fn flush_full(&mut self, peers: &[WorkerHandle]) {
        if self.remote.iter().all(|b| b.len() < BATCH_MAX) {
            return;
        }
        for (dest, batch) in self.remote.iter_mut().enumerate() {
            if batch.len() >= BATCH_MAX {
                let batch = std::mem::replace(batch, Vec::with_capacity(BATCH_MAX));
                peers[dest].send_batch(batch);
            }
        }
    }

    /// Sends each destination's batch and wakes each destination once.
    pub fn flush(&mut self, peers: &[WorkerHandle]) {
        self.cost = 0;
        for (dest, batch) in self.remote.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            peers[dest].send_batch(std::mem::take(batch));
        }
        self.send_msgs(peers);
    }
}
