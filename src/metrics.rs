//! Counters: the one shared-memory surface. Each worker writes only its own [`WorkerMetrics`] (relaxed
//! atomics, no contention); the internal API reads them all.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub connections: AtomicI64,
    pub sessions: AtomicI64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Messages not delivered: QoS 0 to a subscriber whose write buffer is full, or a full session queue.
    pub dropped: AtomicU64,
    pub subscriptions_refused: AtomicU64,
    /// PUBLISHes (and wills) dropped because their topic is not in the enforced topic list.
    pub publishes_refused: AtomicU64,
}

impl WorkerMetrics {
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
    }
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }
    pub fn sessions_changed(&self, by: i64) {
        self.sessions.fetch_add(by, Relaxed);
    }
    pub fn message_in(&self) {
        self.messages_in.fetch_add(1, Relaxed);
    }
    pub fn message_out(&self) {
        self.messages_out.fetch_add(1, Relaxed);
    }
    pub fn add_bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }
    pub fn add_bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }
    pub fn subscription_refused(&self) {
        self.subscriptions_refused.fetch_add(1, Relaxed);
    }
    pub fn publish_refused(&self) {
        self.publishes_refused.fetch_add(1, Relaxed);
    }
}

/// A point-in-time sum over all workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub connections: i64,
    pub sessions: i64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
    pub subscriptions_refused: u64,
    pub publishes_refused: u64,
}

pub fn totals(workers: &[std::sync::Arc<WorkerMetrics>]) -> Totals {
    let mut t = Totals::default();
    for w in workers {
        t.connections += w.connections.load(Relaxed);
        t.sessions += w.sessions.load(Relaxed);
        t.messages_in += w.messages_in.load(Relaxed);
        t.messages_out += w.messages_out.load(Relaxed);
        t.bytes_in += w.bytes_in.load(Relaxed);
        t.bytes_out += w.bytes_out.load(Relaxed);
        t.dropped += w.dropped.load(Relaxed);
        t.subscriptions_refused += w.subscriptions_refused.load(Relaxed);
        t.publishes_refused += w.publishes_refused.load(Relaxed);
    }
    t
}
