//! The JSON shapes of /api/* (documented in API.md), kept apart from the broker's internal types so the
//! wire format changes only on purpose. Times are RFC 3339 UTC strings plus unix milliseconds.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::broker::{Stats, TopicInfo};
use crate::events::{Event, EventKind};
use crate::logging::format_utc;
use crate::message::Message;
use crate::partition::RecentTopic;
use crate::shard::ClientInfo;

#[derive(Serialize)]
pub struct Error {
    pub error: String,
}

// ----- requests ------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRequest {
    pub topic: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub topic: String,
    /// UTF-8 text.
    pub payload: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub username: String,
    pub password: String,
}

// ----- responses -----------------------------------------------------------------------------------

#[derive(Serialize)]
pub struct Will {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
}

#[derive(Serialize)]
pub struct Subscription {
    pub filter: String,
    pub qos: u8,
}

#[derive(Serialize)]
pub struct Client {
    pub client_id: String,
    pub connected: bool,
    pub username: Option<String>,
    pub peer: Option<String>,
    pub protocol_level: Option<u8>,
    pub keep_alive: u16,
    pub idle_secs: Option<f64>,
    pub clean_session: bool,
    pub will: Option<Will>,
    pub subscriptions: Vec<Subscription>,
    pub inflight: usize,
    pub queued: usize,
    pub dropped: u64,
    pub shard: usize,
    pub connected_since: Option<String>,
    pub connected_since_ms: Option<u64>,
}

impl From<&ClientInfo> for Client {
    fn from(c: &ClientInfo) -> Client {
        Client {
            client_id: c.client_id.clone(),
            connected: c.connected,
            username: c.username.clone(),
            peer: c.peer.map(|p| p.to_string()),
            protocol_level: c.protocol_level,
            keep_alive: c.keep_alive,
            idle_secs: c.idle_secs.map(|s| (s * 10.0).round() / 10.0),
            clean_session: c.clean_session,
            will: c.will.as_ref().map(|w| Will {
                topic: w.topic.clone(),
                qos: w.qos as u8,
                retain: w.retain,
            }),
            subscriptions: c
                .subscriptions
                .iter()
                .map(|(f, q)| Subscription {
                    filter: f.clone(),
                    qos: *q as u8,
                })
                .collect(),
            inflight: c.inflight,
            queued: c.queued,
            dropped: c.dropped,
            shard: c.shard,
            connected_since: c.connected_since.map(format_utc),
            connected_since_ms: c.connected_since.map(millis),
        }
    }
}

#[derive(Serialize)]
pub struct ClientPage {
    /// Clients matching the filter (before paging).
    pub total: usize,
    pub offset: usize,
    pub clients: Vec<Client>,
}

#[derive(Serialize)]
pub struct Topic {
    pub topic: String,
    /// An entry of the configured topic list (else only seen).
    pub listed: bool,
    pub pattern: bool,
    pub subscribers: usize,
    pub messages: u64,
    pub retained: bool,
    pub last_publish: Option<String>,
    pub last_publish_ms: Option<u64>,
}

impl From<&TopicInfo> for Topic {
    fn from(t: &TopicInfo) -> Topic {
        Topic {
            topic: t.stat.topic.clone(),
            listed: t.listed,
            pattern: crate::topic::has_wildcard(&t.stat.topic),
            subscribers: t.stat.subscribers,
            messages: t.stat.messages,
            retained: t.stat.retained,
            last_publish: t.stat.last_publish.map(format_utc),
            last_publish_ms: t.stat.last_publish.map(millis),
        }
    }
}

#[derive(Serialize)]
pub struct Topics {
    pub enforced: bool,
    pub topics: Vec<Topic>,
}

#[derive(Serialize)]
pub struct Value {
    pub topic: String,
    pub payload: String,
    /// "utf8" or "base64": how `payload` is written.
    pub encoding: &'static str,
    pub size: usize,
    pub time: String,
    pub time_ms: u64,
    pub qos: u8,
    pub retain: bool,
    pub publisher: String,
}

impl From<&Message> for Value {
    fn from(m: &Message) -> Value {
        let (payload, encoding) = match std::str::from_utf8(&m.payload) {
            Ok(s) => (s.to_string(), "utf8"),
            Err(_) => (base64_encode(&m.payload), "base64"),
        };
        Value {
            topic: m.topic.to_string(),
            payload,
            encoding,
            size: m.payload.len(),
            time: format_utc(m.time),
            time_ms: millis(m.time),
            qos: m.qos as u8,
            retain: m.retain,
            publisher: m.publisher.to_string(),
        }
    }
}

#[derive(Serialize)]
pub struct History {
    pub topic: String,
    /// Newest first.
    pub values: Vec<Value>,
}

#[derive(Serialize)]
pub struct Recent {
    pub topic: String,
    /// Messages published to it since start.
    pub messages: u64,
    pub last: Value,
}

impl From<&RecentTopic> for Recent {
    fn from(r: &RecentTopic) -> Recent {
        Recent {
            topic: r.topic.to_string(),
            messages: r.count,
            last: Value::from(&*r.last),
        }
    }
}

#[derive(Serialize, Clone, Copy, Default)]
pub struct Rates {
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
}

#[derive(Serialize)]
pub struct Shard {
    pub shard: usize,
    pub connections: i64,
    pub inbox_depth: usize,
}

#[derive(Serialize)]
pub struct StatsJson {
    pub uptime_secs: u64,
    pub connections: i64,
    pub sessions: i64,
    pub subscriptions: usize,
    pub retained: usize,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
    pub subscriptions_refused: u64,
    pub publishes_refused: u64,
    pub events_lost: u64,
    /// Long polls of /api/events waiting now (at most `routes::MAX_EVENT_POLLS`).
    pub event_polls: usize,
    #[serde(flatten)]
    pub rates: Rates,
    pub shards: Vec<Shard>,
}

impl StatsJson {
    pub fn new(s: &Stats, rates: Rates) -> StatsJson {
        let t = &s.totals;
        StatsJson {
            uptime_secs: s.uptime.as_secs(),
            connections: t.connections,
            sessions: t.sessions,
            subscriptions: s.subscriptions,
            retained: s.retained,
            messages_in: t.messages_in,
            messages_out: t.messages_out,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            dropped: t.dropped,
            subscriptions_refused: t.subscriptions_refused,
            publishes_refused: t.publishes_refused,
            events_lost: s.events_lost,
            event_polls: 0,
            rates,
            shards: s
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| Shard {
                    shard: i,
                    connections: w.connections,
                    inbox_depth: w.inbox_depth,
                })
                .collect(),
        }
    }
}

/// One broker event: `type` names it; the other fields depend on it (absent ones are omitted).
#[derive(Serialize, Default)]
pub struct EventJson {
    pub seq: u64,
    pub time: String,
    pub time_ms: u64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_session: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    /// For disconnections: graceful, keep_alive_timeout, protocol_error, forced, takeover,
    /// socket_error, shutdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<u16>,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> EventJson {
        let mut j = EventJson {
            seq: e.seq,
            time: format_utc(e.time),
            time_ms: millis(e.time),
            ..EventJson::default()
        };
        match &e.kind {
            EventKind::Connected {
                client_id,
                peer,
                username,
                clean_session,
            } => {
                j.kind = "connected";
                j.client_id = Some(client_id.clone());
                j.peer = Some(peer.to_string());
                j.username = username.clone();
                j.clean_session = Some(*clean_session);
            }
            EventKind::ConnectRefused {
                peer,
                client_id,
                code,
                reason,
            } => {
                j.kind = "connect_refused";
                j.peer = Some(peer.to_string());
                j.client_id = client_id.clone();
                j.code = *code;
                j.reason = Some(reason.clone());
            }
            EventKind::Disconnected {
                client_id,
                kind,
                reason,
            } => {
                j.kind = "disconnected";
                j.client_id = Some(client_id.clone());
                j.disconnect = Some(kind.as_str());
                j.reason = Some(reason.clone());
            }
            EventKind::SubscriptionAccepted {
                client_id,
                filter,
                qos,
            } => {
                j.kind = "subscription_accepted";
                j.client_id = Some(client_id.clone());
                j.filter = Some(filter.clone());
                j.qos = Some(*qos);
            }
            EventKind::SubscriptionRefused {
                client_id,
                filter,
                reason,
            } => {
                j.kind = "subscription_refused";
                j.client_id = Some(client_id.clone());
                j.filter = Some(filter.clone());
                j.reason = Some(reason.clone());
            }
            EventKind::Unsubscribed { client_id, filter } => {
                j.kind = "unsubscribed";
                j.client_id = Some(client_id.clone());
                j.filter = Some(filter.clone());
            }
            EventKind::PublishRefused {
                client_id,
                topic,
                reason,
            } => {
                j.kind = "publish_refused";
                j.client_id = Some(client_id.clone());
                j.topic = Some(topic.clone());
                j.reason = Some(reason.clone());
            }
            EventKind::WillPublished {
                client_id,
                topic,
                qos,
                retain,
            } => {
                j.kind = "will_published";
                j.client_id = Some(client_id.clone());
                j.topic = Some(topic.clone());
                j.qos = Some(*qos);
                j.retain = Some(*retain);
            }
            EventKind::Qos2Completed {
                client_id,
                packet_id,
                direction,
            } => {
                j.kind = "qos2_completed";
                j.client_id = Some(client_id.clone());
                j.packet_id = Some(*packet_id);
                j.action = Some(direction);
            }
            EventKind::TopicCreated { topic } => {
                j.kind = "topic_created";
                j.topic = Some(topic.clone());
            }
            EventKind::TopicDeleted { topic } => {
                j.kind = "topic_deleted";
                j.topic = Some(topic.clone());
            }
            EventKind::UserChanged { username, action } => {
                j.kind = "user_changed";
                j.username = Some(username.clone());
                j.action = Some(action);
            }
        }
        j
    }
}

#[derive(Serialize)]
pub struct Events {
    /// Pass as `since` in the next poll.
    pub last_seq: u64,
    pub events: Vec<EventJson>,
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ----- small codecs --------------------------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); None if malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Percent-decoding for query values (`+` is a space there).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_encode(&[0xff, 0x00, 0xfe]), "/wD+");
        assert_eq!(base64_decode("a*b"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c", true).unwrap(), "a/b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("%zz", true), None);
    }
}
