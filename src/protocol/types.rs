//! The packet model. Invariants live in the types: packet ids are non-zero, QoS is one of three values.

use std::num::NonZeroU16;
use std::sync::Arc;

/// Protocol level byte of CONNECT. Level 5 is reserved for MQTT 5.0 and refused with CONNACK 0x01 today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolLevel {
    /// MQTT 3.1, protocol name "MQIsdp".
    V31,
    /// MQTT 3.1.1, protocol name "MQTT".
    V311,
}

impl ProtocolLevel {
    pub fn as_u8(self) -> u8 {
        match self {
            ProtocolLevel::V31 => 3,
            ProtocolLevel::V311 => 4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A packet identifier: never zero [MQTT-2.3.1-1].
pub type PacketId = NonZeroU16;

/// CONNACK return codes of MQTT 3.1.1 §3.2.2.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectReturnCode {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUserNameOrPassword = 4,
    NotAuthorized = 5,
}

/// The will message carried by CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    pub topic: String,
    pub payload: Arc<[u8]>,
    pub qos: QoS,
    pub retain: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub level: ProtocolLevel,
    pub clean_session: bool,
    /// Seconds; 0 disables keep alive.
    pub keep_alive: u16,
    /// May be empty: the broker assigns one when clean_session is set [MQTT-3.1.3-6].
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    /// Binary data, not necessarily UTF-8.
    pub password: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectReturnCode,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Validated topic name: valid UTF-8, no wildcards, not empty [MQTT-3.3.2-1], [MQTT-3.3.2-2].
    /// Shared: it becomes the routed message's topic without another copy.
    pub topic: Arc<str>,
    /// Present exactly when qos > 0.
    pub pkid: Option<PacketId>,
    /// Shared so that fan-out to many subscribers is a reference-count increment, not a copy.
    pub payload: Arc<[u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: PacketId,
    /// At least one (filter, requested QoS) pair [MQTT-3.8.3-3]. Filters are *not* validated by the codec:
    /// an invalid filter gets SUBACK 0x80 for that filter alone, so validation belongs to the broker.
    pub filters: Vec<(String, QoS)>,
}

/// One SUBACK return code: granted QoS, or failure (0x80).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubAckCode {
    Granted(QoS),
    Failure,
}

impl SubAckCode {
    pub fn as_u8(self) -> u8 {
        match self {
            SubAckCode::Granted(q) => q.as_u8(),
            SubAckCode::Failure => 0x80,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: PacketId,
    pub codes: Vec<SubAckCode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: PacketId,
    /// At least one filter [MQTT-3.10.3-2]; not validated by the codec (see [`Subscribe::filters`]).
    pub filters: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PacketId),
    PubRec(PacketId),
    PubRel(PacketId),
    PubComp(PacketId),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(PacketId),
    PingReq,
    PingResp,
    Disconnect,
}

impl Packet {
    /// Name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}
