//! What the internal API reports about a client (connected, or an offline persistent session).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::conn::Conn;
use crate::protocol::QoS;
use crate::session::Session;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WillInfo {
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
}

#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub client_id: String,
    pub connected: bool,
    pub username: Option<String>,
    pub peer: Option<SocketAddr>,
    /// 3 (MQTT 3.1) or 4 (MQTT 3.1.1); `None` while offline.
    pub protocol_level: Option<u8>,
    pub keep_alive: u16,
    /// Seconds since the last packet; `None` while offline.
    pub idle_secs: Option<f64>,
    pub clean_session: bool,
    pub will: Option<WillInfo>,
    /// (filter, granted QoS), sorted by filter.
    pub subscriptions: Vec<(String, QoS)>,
    pub inflight: usize,
    pub queued: usize,
    /// Messages dropped because the session's queue was full.
    pub dropped: u64,
    /// The worker that holds the session: its home, or where it moved at its first topic.
    pub shard: usize,
    pub connected_since: Option<SystemTime>,
}

impl ClientInfo {
    pub(super) fn new(s: &Session, conn: Option<&Conn>, shard: usize, now: Instant) -> ClientInfo {
        ClientInfo {
            client_id: s.client_id.to_string(),
            connected: conn.is_some(),
            username: s.username.clone(),
            peer: conn.map(|c| c.peer),
            protocol_level: conn.and_then(|c| c.level).map(|l| l.as_u8()),
            keep_alive: conn.map_or(0, |c| c.keep_alive),
            idle_secs: conn.map(|c| now.saturating_duration_since(c.last_packet).as_secs_f64()),
            clean_session: s.clean,
            will: conn.and_then(|c| c.will.as_ref()).map(|w| WillInfo {
                topic: w.topic.clone(),
                qos: w.qos,
                retain: w.retain,
            }),
            subscriptions: s
                .subscriptions
                .iter()
                .map(|(f, q)| (f.to_string(), *q))
                .collect(),
            inflight: s.inflight_len(),
            queued: s.queued_len(),
            dropped: s.dropped,
            shard,
            connected_since: conn.map(|c| c.connected_at),
        }
    }
}
