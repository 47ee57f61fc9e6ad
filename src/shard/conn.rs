//! A connection as its shard holds it, and the generational slab that stores connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mio::net::TcpStream;

use crate::message::ClientId;
use crate::protocol::{Connect, LastWill, ProtocolLevel};

/// A reference to a connection that can cross threads: a late message for a closed connection finds a
/// different generation in the slot and is dropped instead of reaching a newer connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnRef {
    pub worker: usize,
    pub slot: usize,
    pub gen: u32,
}

pub enum Phase {
    /// Accepted; the first packet must be CONNECT [MQTT-3.1.0-1].
    AwaitConnect,
    /// CONNECT received, credentials at the auth pool; reading is paused.
    Authenticating(Box<Connect>),
    /// CONNECT accepted; about to attach here or move to the client id's home worker.
    Accepted(Box<Connect>),
    /// Attached to the session of this client id (in this shard).
    Connected(ClientId),
}

pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub phase: Phase,
    /// Bytes of an incomplete packet. Empty (no allocation) between packets, so idle connections hold
    /// no read buffer: reads go to the worker's shared scratch buffer first.
    pub rbuf: Vec<u8>,
    /// Encoded packets not yet written. Flushed once per loop turn.
    pub wbuf: Vec<u8>,
    /// Write interest is registered only while `wbuf` holds bytes the socket would not take.
    pub write_interest: bool,
    /// Already listed in the shard's dirty list this turn.
    pub dirty: bool,
    /// Already in the shard's ready-to-read list.
    pub in_ready: bool,
    /// Has sent a PUBLISH: reading it pauses while the broker is backlogged.
    pub publisher: bool,
    /// The topic of its last PUBLISH, shared by the next one to the same topic (no allocation).
    pub last_topic: Option<Arc<str>>,
    pub keep_alive: u16,
    /// When the connection is closed unless a packet arrives: 1.5 × keep alive after the last packet
    /// [MQTT-3.1.2-24], or the CONNECT timeout before CONNECT. `None`: keep alive 0.
    pub deadline: Option<Instant>,
    /// The time of this connection's entry in the shard's timer heap, if any.
    pub timer_at: Option<Instant>,
    pub last_packet: Instant,
    pub connected_at: SystemTime,
    /// Boxed: most connections have none, and an idle connection should cost little.
    pub will: Option<Box<LastWill>>,
    pub level: Option<ProtocolLevel>,
    /// A fresh session's connection whose first PUBLISH or SUBSCRIBE has not been seen yet: it may
    /// still move to the worker owning that topic's partition (`Shard::placement`).
    pub may_move: bool,
    /// Set once it is to move: parsing stops, and the unparsed bytes travel with it.
    pub moving_to: Option<usize>,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        connect_deadline: Instant,
    ) -> Conn {
        Conn {
            stream,
            peer,
            phase: Phase::AwaitConnect,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            write_interest: false,
            dirty: false,
            in_ready: false,
            publisher: false,
            last_topic: None,
            keep_alive: 0,
            deadline: Some(connect_deadline),
            timer_at: None,
            last_packet: now,
            connected_at: SystemTime::now(),
            will: None,
            level: None,
            may_move: false,
            moving_to: None,
        }
    }
}

struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

/// A `Vec`-backed slab whose slots carry a generation, bumped on every removal.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Returns (slot, generation).
    pub fn insert(&mut self, val: T) -> (usize, u32) {
        if let Some(i) = self.free.pop() {
            self.slots[i].val = Some(val);
            (i, self.slots[i].gen)
        } else {
            self.slots.push(Slot {
                gen: 0,
                val: Some(val),
            });
            (self.slots.len() - 1, 0)
        }
    }

    pub fn get(&self, slot: usize, gen: u32) -> Option<&T> {
        self.slots
            .get(slot)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.val.as_ref())
    }

    pub fn get_mut(&mut self, slot: usize, gen: u32) -> Option<&mut T> {
        self.slots
            .get_mut(slot)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.val.as_mut())
    }

    /// The current occupant of `slot`, with its generation (for socket events, which carry no generation).
    pub fn current(&mut self, slot: usize) -> Option<(u32, &mut T)> {
        let s = self.slots.get_mut(slot)?;
        let gen = s.gen;
        s.val.as_mut().map(|v| (gen, v))
    }

    pub fn remove(&mut self, slot: usize, gen: u32) -> Option<T> {
        let s = self.slots.get_mut(slot).filter(|s| s.gen == gen)?;
        let val = s.val.take()?;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(slot);
        Some(val)
    }

    /// (slot, generation) of every occupant.
    pub fn keys(&self) -> Vec<(usize, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.val.is_some())
            .map(|(i, s)| (i, s.gen))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_generation_misses_the_new_occupant() {
        let mut slab = Slab::default();
        let (a, ga) = slab.insert("a");
        assert_eq!(slab.remove(a, ga), Some("a"));
        let (b, gb) = slab.insert("b");
        assert_eq!(a, b, "the slot is reused");
        assert_ne!(ga, gb);
        assert!(slab.get(a, ga).is_none());
        assert_eq!(slab.get(b, gb), Some(&"b"));
        assert_eq!(slab.remove(a, ga), None);
        assert_eq!(slab.keys(), vec![(b, gb)]);
    }
}
