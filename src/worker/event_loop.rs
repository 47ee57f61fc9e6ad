//! One worker's loop turn: poll → inbox → socket events → local envelopes → timers → outbox → writes.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};

use super::{Control, Envelope, Outbox, WorkerHandle, WorkerMsg};
use crate::partition::Partition;
use crate::shard::{Shard, SocketEvent};

/// The waker's token, clear of slab indices.
pub const WAKER_TOKEN: Token = Token(usize::MAX);

/// Inbox messages handled per turn before sockets get their turn again (fairness between the two).
const INBOX_BUDGET: usize = 1024;
/// Inbox backlog (in [`super::Envelope::cost`] units, roughly bytes) above which workers stop reading
/// from publishing clients, and below which they resume. It bounds the memory held in inboxes.
const BACKLOG_HIGH: usize = 8 << 20;
const BACKLOG_LOW: usize = 2 << 20;
const THROTTLE_RECHECK: Duration = Duration::from_millis(1);

pub struct Worker {
    pub(crate) me: usize,
    pub(crate) poll: Poll,
    pub(crate) inbox: Receiver<WorkerMsg>,
    pub(crate) peers: Arc<[WorkerHandle]>,
    pub(crate) shard: Shard,
    pub(crate) partition: Partition,
    pub(crate) out: Outbox,
}

impl Worker {
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut inbox_backlog = false;
        let mut stop = false;
        let mut pressured = false;
        loop {
            let now = Instant::now();
            if self.shard.has_throttled_reads() {
                // The congestion may have cleared during the last turn (this worker's own subscriber
                // caught up): then read the held-back publishers now rather than after a timer.
                self.shard.set_throttled(self.congested());
            }
            let timeout = if inbox_backlog || self.shard.has_pending_work() {
                Some(Duration::ZERO)
            } else if self.shard.has_throttled_reads() {
                // Look again soon: the backlog drains on other threads too, which do not wake us.
                Some(THROTTLE_RECHECK)
            } else {
                // Round up so a deadline is never checked a hair early and the loop spun.
                self.shard
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(now) + Duration::from_micros(500))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            // The inbox before the sockets: a subscribe (or unsubscribe) acknowledged to one client is in
            // this inbox before another client can react to that acknowledgement by publishing here.
            for _ in 0..INBOX_BUDGET {
                let Ok(msg) = self.inbox.try_recv() else {
                    break;
                };
                stop |= self.on_message(msg, now);
                self.drain_local();
                self.out.flush_full(&self.peers);
            }
            inbox_backlog = !self.inbox.is_empty();
            self.shard.set_throttled(self.congested());
            for ev in events.iter() {
                if ev.token() == WAKER_TOKEN {
                    continue;
                }
                let sev = SocketEvent {
                    readable: ev.is_readable(),
                    writable: ev.is_writable(),
                    closing: ev.is_read_closed() || ev.is_error(),
                };
                self.shard
                    .on_socket_event(ev.token().0, sev, &mut self.out, now);
                stop |= self.after_reads(now);
                self.out.flush_full(&self.peers);
            }
            self.shard.continue_reads(&mut self.out, now);
            stop |= self.after_reads(now);
            self.shard.expire(now, &mut self.out);
            self.drain_local();
            // Envelopes go out before the socket writes: once a client reads a SUBACK, UNSUBACK or PUBACK,
            // the subscribe, unsubscribe or publish it acknowledges is already queued at every partition
            // concerned, ahead of anything the client (or a peer it tells) sends next.
            self.out.flush(&self.peers);
            self.shard.flush_writes(&mut self.out);
            self.drain_local();
            self.out.flush(&self.peers);
            let pressure = self.peers[self.me].pressure();
            if pressured && !pressure {
                // Workers holding back publishers re-check only on a timer; tell them now.
                for (i, peer) in self.peers.iter().enumerate() {
                    if i != self.me {
                        peer.wake();
                    }
                }
            }
            pressured = pressure;
            if stop {
                self.shard.shutdown();
                return Ok(());
            }
        }
    }

    /// Whether any worker's inbox is backlogged (with hysteresis, so reading does not flap) or holds a
    /// connected session whose queue is filling up.
    fn congested(&self) -> bool {
        let limit = if self.shard.throttled() {
            BACKLOG_LOW
        } else {
            BACKLOG_HIGH
        };
        self.peers
            .iter()
            .any(|p| p.backlog() > limit || p.pressure())
    }

    /// After socket reads: first the inbox messages the shard took in right after each read (they were
    /// sent before those bytes were written, e.g. the subscribe whose SUBACK made a client publish), then
    /// the envelopes the bytes produced. Returns true on `Shutdown`.
    fn after_reads(&mut self, now: Instant) -> bool {
        let mut stop = false;
        for msg in self.shard.take_early() {
            stop |= self.on_message(msg, now);
        }
        self.drain_local();
        stop
    }

    /// Returns true on `Shutdown`.
    fn on_message(&mut self, msg: WorkerMsg, now: Instant) -> bool {
        match msg {
            WorkerMsg::Accept { stream, peer } => self.shard.accept(stream, peer, now),
            WorkerMsg::Handoff(h) => self.shard.adopt(*h, &mut self.out, now),
            WorkerMsg::Move(m) => self.shard.adopt_moved(*m, &mut self.out, now),
            WorkerMsg::Gone(client) => self.shard.forget_moved(&client),
            WorkerMsg::AuthDone { conn, verdict } => {
                self.shard.auth_done(conn, verdict, &mut self.out, now)
            }
            WorkerMsg::Batch { envelopes, cost } => {
                for env in envelopes {
                    self.on_envelope(env);
                }
                self.peers[self.me].handled(cost);
            }

            WorkerMsg::Control(c) => self.on_control(c, now),
            WorkerMsg::Shutdown => return true,
        }
        false
    }

    fn on_envelope(&mut self, env: Envelope) {
        match env {
            Envelope::Publish(msg) => self.partition.publish(msg, &mut self.out),
            Envelope::Subscribe {
                client,
                epoch,
                filter,
                qos,
                home,
            } => self
                .partition
                .subscribe(client, epoch, &filter, qos, home, &mut self.out),
            Envelope::Unsubscribe { client, filter } => {
                self.partition.unsubscribe(&client, &filter)
            }
            Envelope::Deliver(d) => self.shard.deliver(d, &mut self.out),
        }
    }

    /// Envelopes addressed to this worker are handled in the same turn; handling one may produce more
    /// (a local publish delivering to a local subscriber), hence the loop.
    fn drain_local(&mut self) {
        while let Some(env) = self.out.local.pop_front() {
            self.on_envelope(env);
        }
    }

    fn on_control(&mut self, c: Control, now: Instant) {
        // A caller that gave up waiting has dropped its receiver; the answer is simply not needed.
        match c {
            Control::TopicList { list, reply } => {
                self.shard.set_topic_list(list);
                let _ = reply.send(());
            }
            Control::ListClients(reply) => {
                let _ = reply.send(self.shard.list_clients(now));
            }
            Control::Disconnect {
                client_id,
                discard_session,
                reply,
            } => {
                if let Some(w) = self.shard.moved_to(&client_id) {
                    // The API asks the client id's home; the session lives where it moved.
                    self.peers[w].send(WorkerMsg::Control(Control::Disconnect {
                        client_id,
                        discard_session,
                        reply,
                    }));
                    return;
                }
                let found = self
                    .shard
                    .force_disconnect(&client_id, discard_session, &mut self.out);
                let _ = reply.send(found);
            }
            Control::History { topic, reply } => {
                let _ = reply.send(self.partition.history(&topic));
            }
            Control::Recent { reply } => {
                let _ = reply.send(self.partition.recent());
            }
            Control::TopicStats { extra, reply } => {
                let (me, n) = (self.me, self.peers.len());
                let owns = |t: &str| crate::message::partition_of(t, n) == me;
                let _ = reply.send(self.partition.topic_stats(&extra, owns));
            }
            Control::PartitionStats { reply } => {
                let _ = reply.send(self.partition.stats());
            }
        }
    }
}
