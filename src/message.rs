//! The application message as it travels between threads, and the two hashes that decide where things live.

use std::sync::Arc;
use std::time::SystemTime;

use crate::protocol::QoS;

/// Client ids are shared between the session, the subscription entries and the deliveries addressed to it.
pub type ClientId = Arc<str>;

/// A published message. Built once by the publisher's shard and shared (by `Arc`) with the partition's
/// retained store and history and with every delivery, so fan-out never copies the payload.
#[derive(Debug)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Arc<[u8]>,
    /// The QoS it was published with; each delivery carries the effective (lower) QoS.
    pub qos: QoS,
    pub retain: bool,
    /// Client id of the publisher ("$admin" for the admin API).
    pub publisher: ClientId,
    pub time: SystemTime,
}

/// One copy of a message for one subscriber, sent from the topic's partition to the shard holding the
/// subscriber's session.
#[derive(Debug)]
pub struct Delivery {
    /// The session incarnation the subscription belongs to, unique across workers: it names the
    /// session (the shard finds it by epoch), so a delivery for an ended clean session is dropped
    /// rather than handed to a new session that reuses the client id. Not the client id: cloning that
    /// `Arc` here and dropping it on the shard's thread made its reference count bounce between cores
    /// (about 13 % of the broker's CPU in a fan-out profile).
    pub epoch: u64,
    pub msg: Arc<Message>,
    /// min(publish QoS, highest matching subscription QoS) [MQTT-3.3.5-1].
    pub qos: QoS,
    /// Set only for retained messages sent because of a new subscription [MQTT-3.3.1-8], [MQTT-3.3.1-9].
    pub retain: bool,
}

/// FNV-1a: tiny, fast on short strings, and the same in every process, so placement is reproducible.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// MurmurHash3's finaliser: FNV's low bits alone spread similar names ("client-1", "client-2") poorly
/// over a small number of workers; this mixes every input bit into them.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The worker whose partition owns `topic` (its subscriptions by exact name, retained message and history).
pub fn partition_of(topic: &str, workers: usize) -> usize {
    (mix(fnv1a(topic)) % workers as u64) as usize
}

/// The worker whose shard holds the session (and live connection) of `client_id`.
pub fn home_of(client_id: &str, workers: usize) -> usize {
    // A different seed from `partition_of`, so that a client named like a topic is not tied to its worker.
    (mix(fnv1a(client_id) ^ 0x9e37_79b9_7f4a_7c15) % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spread() {
        assert_eq!(partition_of("a/b", 4), partition_of("a/b", 4));
        let mut counts = [0usize; 4];
        let mut topics = [0usize; 4];
        for i in 0..4000 {
            counts[home_of(&format!("client-{i}"), 4)] += 1;
            topics[partition_of(&format!("t/{i}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850), "{counts:?}");
        assert!(topics.iter().all(|&c| c > 850), "{topics:?}");
    }
}
