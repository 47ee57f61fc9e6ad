//! The event bus: a live feed of what happens in the broker (connections, disconnections with their
//! reason, subscriptions accepted or refused, wills, topic and user changes) for the admin console.
//!
//! Workers must never wait on observers, so they `try_send` events into a bounded channel; the `events`
//! thread owns a ring buffer of the most recent events and fans each one out to the current watchers,
//! each through a bounded channel of its own. A watcher that falls behind is dropped (it reconnects and
//! gets the backlog again); events that do not fit the bus are counted, never waited for.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Events kept for new watchers and for polling.
pub const BACKLOG: usize = 1000;
const BUS_CAPACITY: usize = 16 * 1024;
const WATCHER_CAPACITY: usize = 4096;

/// Why a connection ended, as reported to observers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectKind {
    Graceful,
    KeepAliveTimeout,
    ProtocolError,
    Forced,
    Takeover,
    SocketError,
    Shutdown,
}

impl DisconnectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectKind::Graceful => "graceful",
            DisconnectKind::KeepAliveTimeout => "keep_alive_timeout",
            DisconnectKind::ProtocolError => "protocol_error",
            DisconnectKind::Forced => "forced",
            DisconnectKind::Takeover => "takeover",
            DisconnectKind::SocketError => "socket_error",
            DisconnectKind::Shutdown => "shutdown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Connected {
        client_id: String,
        peer: SocketAddr,
        username: Option<String>,
        clean_session: bool,
    },
    /// CONNECT refused (with its CONNACK code) or a connection closed before CONNECT completed (no code).
    ConnectRefused {
        peer: SocketAddr,
        client_id: Option<String>,
        code: Option<u8>,
        reason: String,
    },
    Disconnected {
        client_id: String,
        kind: DisconnectKind,
        reason: String,
    },
    SubscriptionAccepted {
        client_id: String,
        filter: String,
        qos: u8,
    },
    SubscriptionRefused {
        client_id: String,
        filter: String,
        reason: String,
    },
    Unsubscribed {
        client_id: String,
        filter: String,
    },
    PublishRefused {
        client_id: String,
        topic: String,
        reason: String,
    },
    WillPublished {
        client_id: String,
        topic: String,
        qos: u8,
        retain: bool,
    },
    /// A QoS 2 handshake finished: `received` (PUBLISH, PUBREC, PUBREL, PUBCOMP with a publisher) or
    /// `delivered` (with a subscriber). Rate-limited per worker, so a QoS 2 flood cannot drown the feed.
    Qos2Completed {
        client_id: String,
        packet_id: u16,
        direction: &'static str,
    },
    TopicCreated {
        topic: String,
    },
    TopicDeleted {
        topic: String,
    },
    UserChanged {
        username: String,
        action: &'static str,
    },
}

#[derive(Clone, Debug)]
pub struct Event {
    /// Increasing from 1; lets a poller ask for what came after the last one it saw.
    pub seq: u64,
    pub time: SystemTime,
    pub kind: EventKind,
}

enum BusMsg {
    Event(SystemTime, EventKind),
    Watch {
        since: u64,
        backlog: Sender<Vec<Arc<Event>>>,
        live: Sender<Arc<Event>>,
    },
    Since {
        since: u64,
        reply: Sender<Vec<Arc<Event>>>,
    },
    /// Explicit, because API handles that outlive the broker hold senders too.
    Stop,
}

/// The sending side, cloned into every worker.
#[derive(Clone)]
pub struct EventBus {
    tx: Sender<BusMsg>,
    lost: Arc<AtomicU64>,
}

impl EventBus {
    /// Never blocks: an event that does not fit is counted as lost.
    pub fn emit(&self, kind: EventKind) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(BusMsg::Event(SystemTime::now(), kind))
        {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the bus was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The backlog after `since`, then a live feed. Blocks the caller briefly (never a worker).
    pub fn watch(&self, since: u64) -> Option<Watch> {
        let (btx, brx) = crossbeam_channel::bounded(1);
        let (ltx, lrx) = crossbeam_channel::bounded(WATCHER_CAPACITY);
        self.tx
            .send(BusMsg::Watch {
                since,
                backlog: btx,
                live: ltx,
            })
            .ok()?;
        Some(Watch {
            backlog: brx.recv().ok()?,
            live: lrx,
        })
    }

    /// The kept events with `seq > since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Arc<Event>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(BusMsg::Since { since, reply: tx }).is_err() {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }
}

/// A watcher's view: the kept events it asked for, then every new one.
pub struct Watch {
    pub backlog: Vec<Arc<Event>>,
    pub live: Receiver<Arc<Event>>,
}

pub struct EventThread {
    tx: Sender<BusMsg>,
    thread: JoinHandle<()>,
}

impl EventThread {
    pub fn start() -> std::io::Result<(EventBus, EventThread)> {
        let (tx, rx) = crossbeam_channel::bounded(BUS_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || run(rx))?;
        Ok((
            EventBus {
                tx: tx.clone(),
                lost: Arc::default(),
            },
            EventThread { tx, thread },
        ))
    }

    /// Stops the thread; watchers see their feed end.
    pub fn join(self) {
        // Blocking send: the bus may be full, and the thread is draining it.
        if self.tx.send(BusMsg::Stop).is_ok() {
            let _ = self.thread.join();
        }
    }
}

fn run(rx: Receiver<BusMsg>) {
    let mut ring: VecDeque<Arc<Event>> = VecDeque::with_capacity(BACKLOG);
    let mut watchers: Vec<Sender<Arc<Event>>> = Vec::new();
    let mut seq = 0u64;
    let after = |ring: &VecDeque<Arc<Event>>, since: u64| {
        ring.iter().filter(|e| e.seq > since).cloned().collect()
    };
    for msg in rx {
        match msg {
            BusMsg::Event(time, kind) => {
                seq += 1;
                let ev = Arc::new(Event { seq, time, kind });
                if ring.len() == BACKLOG {
                    ring.pop_front();
                }
                ring.push_back(ev.clone());
                watchers.retain(|w| w.try_send(ev.clone()).is_ok());
            }
            BusMsg::Watch {
                since,
                backlog,
                live,
            } => {
                if backlog.send(after(&ring, since)).is_ok() {
                    watchers.push(live);
                }
            }
            BusMsg::Since { since, reply } => {
                let _ = reply.send(after(&ring, since));
            }
            BusMsg::Stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_then_live_and_since() {
        let (bus, thread) = EventThread::start().unwrap();
        bus.emit(EventKind::TopicCreated { topic: "a".into() });
        bus.emit(EventKind::TopicCreated { topic: "b".into() });
        let Watch { backlog, live } = bus.watch(1).unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(
            backlog[0].kind,
            EventKind::TopicCreated { topic: "b".into() }
        );
        bus.emit(EventKind::TopicDeleted { topic: "a".into() });
        let ev = live
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(ev.seq, 3);
        assert_eq!(bus.since(0).len(), 3);
        drop(bus);
        thread.join();
    }
}
