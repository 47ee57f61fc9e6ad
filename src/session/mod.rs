//! A client session: what survives the connection when clean session is 0 — subscriptions, QoS 1/2 messages
//! in flight, messages queued beyond the in-flight window or while offline, and QoS 2 packet ids received
//! but not yet released. Pure state owned by the client id's home shard; the shard does the I/O.
//!
//! Outbound flow control: at most `max_inflight` QoS 1/2 messages await acknowledgement; the rest wait in
//! `queue` (in order). An offline session's queue holds up to `max_queued_messages`: when it is full the
//! *new* message is dropped and counted in `dropped` (the policy Mosquitto also follows); QoS 0 messages
//! are never queued for an offline client. A connected session's queue is kept short by the shard, which
//! pauses publishers, and never drops.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU16;
use std::sync::Arc;

use crate::message::{ClientId, Message};
use crate::protocol::{PacketId, QoS};

/// Where an outbound QoS 1/2 message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    /// PUBLISH sent (QoS 1: awaiting PUBACK; QoS 2: awaiting PUBREC).
    Published,
    /// QoS 2: PUBREC received and PUBREL sent, awaiting PUBCOMP.
    Released,
}

#[derive(Clone, Debug)]
pub struct Outgoing {
    pub pid: PacketId,
    pub msg: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub state: OutState,
}

#[derive(Clone, Debug)]
struct Queued {
    msg: Arc<Message>,
    qos: QoS,
    retain: bool,
}

/// What to do with an offered message.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Write a PUBLISH now (with this packet id when QoS > 0).
    Send(Option<PacketId>),
    Queued,
    /// Dropped: QoS 0 while offline (not counted), or the queue was full (counted).
    Dropped,
}

pub struct Session {
    pub client_id: ClientId,
    /// Changes each time a new session (not a resumed one) starts under this client id.
    pub epoch: u64,
    pub clean: bool,
    /// The live connection's slot and generation in the home shard.
    pub conn: Option<(usize, u32)>,
    /// filter → granted QoS.
    pub subscriptions: BTreeMap<Arc<str>, QoS>,
    pub username: Option<String>,
    inflight: VecDeque<Outgoing>,
    queue: VecDeque<Queued>,
    /// Payload bytes in `queue`, for the pressure limit on large messages.
    queued_bytes: usize,
    /// QoS 2 packet ids received (PUBREC sent) whose PUBREL has not arrived: a resend with DUP is not
    /// routed again, so subscribers get the message exactly once.
    incoming_qos2: Vec<u16>,
    next_pid: u16,
    /// Messages dropped because the queue was full.
    pub dropped: u64,
    /// Counted in the shard's `pressured_sessions` (connected, queue over half full).
    pub pressured: bool,
}

impl Session {
    pub fn new(client_id: ClientId, epoch: u64, clean: bool) -> Session {
        Session {
            client_id,
            epoch,
            clean,
            conn: None,
            subscriptions: BTreeMap::new(),
            username: None,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            incoming_qos2: Vec::new(),
            next_pid: 0,
            dropped: 0,
            pressured: false,
        }
    }

    /// Nothing subscribed, in flight, queued or half-received: no other thread holds anything that
    /// refers to where this session lives, so it can move to another worker.
    pub fn is_fresh(&self) -> bool {
        self.subscriptions.is_empty()
            && self.inflight.is_empty()
            && self.queue.is_empty()
            && self.incoming_qos2.is_empty()
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Offers a message for delivery. `online` says whether a connection is attached.
    /// The message is borrowed and cloned only if kept (QoS 1/2): its reference count is shared with
    /// the other deliveries of a fan-out, on other threads, so each needless clone and drop costs.
    pub fn offer(
        &mut self,
        msg: &Arc<Message>,
        qos: QoS,
        retain: bool,
        online: bool,
        max_inflight: usize,
        max_queued: usize,
    ) -> Offer {
        if qos == QoS::AtMostOnce {
            return if online {
                Offer::Send(None)
            } else {
                Offer::Dropped
            };
        }
        // Keep order: while older messages wait in the queue, a new one queues behind them.
        if online && self.queue.is_empty() && self.inflight.len() < max_inflight {
            let pid = self.start(msg.clone(), qos, retain);
            return Offer::Send(Some(pid));
        }
        // `max_queued` caps an offline session's queue. A connected session's queue is held near half
        // of it by pausing publishers, but that pause reaches the workers reading them only after the
        // messages already on their way (bounded by the inbox backlog limit): those are queued too,
        // never dropped, since their publishers already have their PUBACK or PUBREC.
        if !online && self.queue.len() >= max_queued {
            self.dropped += 1;
            return Offer::Dropped;
        }
        self.queued_bytes += msg.payload.len();
        self.queue.push_back(Queued {
            msg: msg.clone(),
            qos,
            retain,
        });
        Offer::Queued
    }

    /// Moves the next queued message into flight if the window allows; the caller writes it.
    pub fn next_queued(&mut self, max_inflight: usize) -> Option<Outgoing> {
        if self.inflight.len() >= max_inflight {
            return None;
        }
        let q = self.queue.pop_front()?;
        self.queued_bytes -= q.msg.payload.len();
        self.start(q.msg, q.qos, q.retain);
        self.inflight.back().cloned()
    }

    fn start(&mut self, msg: Arc<Message>, qos: QoS, retain: bool) -> PacketId {
        let pid = self.alloc_pid();
        self.inflight.push_back(Outgoing {
            pid,
            msg,
            qos,
            retain,
            state: OutState::Published,
        });
        pid
    }

    /// The next packet id not in flight. The window is far below 65,535, so this always finds one.
    fn alloc_pid(&mut self) -> PacketId {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            let Some(pid) = NonZeroU16::new(self.next_pid) else {
                continue;
            };
            if !self.inflight.iter().any(|o| o.pid == pid) {
                return pid;
            }
        }
    }

    fn position(&self, pid: PacketId, qos: QoS, state: OutState) -> Option<usize> {
        // Acks mostly arrive in order, so the front is the usual hit.
        self.inflight
            .iter()
            .position(|o| o.pid == pid && o.qos == qos && o.state == state)
    }

    /// PUBACK for a QoS 1 message; false if no such message is in flight.
    pub fn on_puback(&mut self, pid: PacketId) -> bool {
        match self.position(pid, QoS::AtLeastOnce, OutState::Published) {
            Some(i) => self.inflight.remove(i).is_some(),
            None => false,
        }
    }

    /// PUBREC for a QoS 2 message: true if the caller should send PUBREL. A repeated PUBREC for a
    /// message already released also gets its PUBREL again.
    pub fn on_pubrec(&mut self, pid: PacketId) -> bool {
        if let Some(i) = self.position(pid, QoS::ExactlyOnce, OutState::Published) {
            self.inflight[i].state = OutState::Released;
            return true;
        }
        self.position(pid, QoS::ExactlyOnce, OutState::Released)
            .is_some()
    }

    /// PUBCOMP for a QoS 2 message; false if no such message awaited it.
    pub fn on_pubcomp(&mut self, pid: PacketId) -> bool {
        match self.position(pid, QoS::ExactlyOnce, OutState::Released) {
            Some(i) => self.inflight.remove(i).is_some(),
            None => false,
        }
    }

    /// Everything in flight, in the order it was first sent, to resend on resume [MQTT-4.4.0-1].
    pub fn inflight(&self) -> impl Iterator<Item = &Outgoing> {
        self.inflight.iter()
    }

    /// An incoming QoS 2 PUBLISH: true if it is new and must be routed; false for a resend of one
    /// already received (answered with PUBREC, not routed again).
    pub fn receive_qos2(&mut self, pid: PacketId) -> bool {
        // A handful at a time in practice (bounded by the client's own window), so a Vec beats a set.
        if self.incoming_qos2.contains(&pid.get()) {
            return false;
        }
        self.incoming_qos2.push(pid.get());
        true
    }

    /// PUBREL: forgets the packet id (PUBCOMP is sent either way [MQTT-4.3.3-2]). True if it was pending.
    pub fn release_qos2(&mut self, pid: PacketId) -> bool {
        let before = self.incoming_qos2.len();
        self.incoming_qos2.retain(|&p| p != pid.get());
        self.incoming_qos2.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn msg(n: u8) -> Arc<Message> {
        Arc::new(Message {
            topic: "t".into(),
            payload: vec![n].into(),
            qos: QoS::ExactlyOnce,
            retain: false,
            publisher: "p".into(),
            time: SystemTime::now(),
        })
    }

    fn pid(n: u16) -> PacketId {
        NonZeroU16::new(n).unwrap()
    }

    #[test]
    fn window_then_queue_then_drop_offline_and_order_is_kept() {
        let mut s = Session::new("c".into(), 1, false);
        assert_eq!(
            s.offer(&msg(1), QoS::AtLeastOnce, false, true, 2, 2),
            Offer::Send(Some(pid(1)))
        );
        assert_eq!(
            s.offer(&msg(2), QoS::AtLeastOnce, false, true, 2, 2),
            Offer::Send(Some(pid(2)))
        );
        assert_eq!(
            s.offer(&msg(3), QoS::AtLeastOnce, false, true, 2, 2),
            Offer::Queued
        );
        assert_eq!(
            s.offer(&msg(4), QoS::AtLeastOnce, false, true, 2, 2),
            Offer::Queued
        );
        // Connected: past the limit still queued (publishers are being paused meanwhile).
        assert_eq!(
            s.offer(&msg(5), QoS::AtLeastOnce, false, true, 2, 2),
            Offer::Queued
        );
        assert_eq!(s.dropped, 0);
        // Offline: the limit drops, and counts.
        assert_eq!(
            s.offer(&msg(6), QoS::AtLeastOnce, false, false, 2, 2),
            Offer::Dropped
        );
        assert_eq!(s.dropped, 1);
        assert_eq!(s.queued_len(), 3);
        assert_eq!(s.queued_bytes(), 3, "one payload byte each");
        assert!(s.next_queued(2).is_none(), "window full");
        assert!(s.on_puback(pid(1)));
        assert!(!s.on_puback(pid(1)), "a second PUBACK matches nothing");
        let next = s.next_queued(2).unwrap();
        assert_eq!(next.msg.payload[0], 3);
        assert_eq!(next.pid, pid(3));
        assert_eq!(s.queued_bytes(), 2);
    }

    #[test]
    fn offline_qos0_is_dropped_uncounted_and_qos1_is_queued() {
        let mut s = Session::new("c".into(), 1, false);
        assert_eq!(
            s.offer(&msg(1), QoS::AtMostOnce, false, false, 10, 10),
            Offer::Dropped
        );
        assert_eq!(
            s.offer(&msg(2), QoS::AtLeastOnce, false, false, 10, 10),
            Offer::Queued
        );
        assert_eq!(s.dropped, 0);
        assert_eq!(s.queued_len(), 1);
    }

    #[test]
    fn qos2_outbound_handshake() {
        let mut s = Session::new("c".into(), 1, false);
        assert_eq!(
            s.offer(&msg(1), QoS::ExactlyOnce, false, true, 10, 10),
            Offer::Send(Some(pid(1)))
        );
        assert!(
            !s.on_pubcomp(pid(1)),
            "PUBCOMP before PUBREC matches nothing"
        );
        assert!(s.on_pubrec(pid(1)));
        assert!(s.on_pubrec(pid(1)), "a repeated PUBREC gets PUBREL again");
        assert_eq!(s.inflight().next().unwrap().state, OutState::Released);
        assert!(s.on_pubcomp(pid(1)));
        assert_eq!(s.inflight_len(), 0);
    }

    #[test]
    fn qos2_inbound_resend_is_not_routed_twice() {
        let mut s = Session::new("c".into(), 1, false);
        assert!(s.receive_qos2(pid(7)));
        assert!(!s.receive_qos2(pid(7)));
        s.release_qos2(pid(7));
        assert!(s.receive_qos2(pid(7)), "after PUBREL the id may be reused");
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut s = Session::new("c".into(), 1, false);
        s.next_pid = u16::MAX - 1;
        assert_eq!(
            s.offer(&msg(1), QoS::AtLeastOnce, false, true, 10, 10),
            Offer::Send(Some(pid(u16::MAX)))
        );
        assert_eq!(
            s.offer(&msg(2), QoS::AtLeastOnce, false, true, 10, 10),
            Offer::Send(Some(pid(1)))
        );
    }
}
