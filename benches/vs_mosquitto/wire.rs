//! The few MQTT 3.1.1 packets the generator sends and receives. Sending reuses `shardmq::protocol`'s
//! encoder; receiving is a zero-copy parser (no allocation per PUBLISH), with the fixed header read by
//! `shardmq::protocol::frame`.

use std::num::NonZeroU16;

use shardmq::protocol::{
    encode, encode_publish, frame, Connect, Packet, ProtocolLevel, QoS, Subscribe,
};

/// Bytes at the start of every payload: publisher id (u32), sequence number (u64), send time in
/// nanoseconds since the run's base instant (u64), all little endian.
pub const HEADER_LEN: usize = 20;

pub fn qos(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtMostOnce)
}

pub fn connect(out: &mut Vec<u8>, client_id: &str, login: Option<(&str, &str)>) {
    let packet = Packet::Connect(Connect {
        level: ProtocolLevel::V311,
        clean_session: true,
        keep_alive: 0,
        client_id: client_id.to_string(),
        will: None,
        username: login.map(|(u, _)| u.to_string()),
        password: login.map(|(_, p)| p.as_bytes().to_vec()),
    });
    encode(&packet, out);
}

pub fn subscribe(out: &mut Vec<u8>, pkid: u16, filter: &str, q: u8) {
    let packet = Packet::Subscribe(Subscribe {
        pkid: NonZeroU16::new(pkid).unwrap_or(NonZeroU16::MIN),
        filters: vec![(filter.to_string(), qos(q))],
    });
    encode(&packet, out);
}

/// A PUBLISH whose payload is `template` with the header fields written in.
pub fn publish(
    out: &mut Vec<u8>,
    topic: &str,
    q: u8,
    pkid: u16,
    template: &[u8],
    hdr: [u8; HEADER_LEN],
) {
    let start = out.len();
    encode_publish(
        out,
        false,
        qos(q),
        false,
        topic,
        NonZeroU16::new(pkid),
        template,
    );
    let payload_at = out.len() - template.len();
    debug_assert!(payload_at > start);
    out[payload_at..payload_at + HEADER_LEN].copy_from_slice(&hdr);
}

pub fn header(publisher: u32, seq: u64, sent_ns: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&publisher.to_le_bytes());
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..20].copy_from_slice(&sent_ns.to_le_bytes());
    h
}

pub fn parse_header(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let h = payload.get(..HEADER_LEN)?;
    Some((
        u32::from_le_bytes(h[0..4].try_into().ok()?),
        u64::from_le_bytes(h[4..12].try_into().ok()?),
        u64::from_le_bytes(h[12..20].try_into().ok()?),
    ))
}

/// PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70.
pub fn ack(out: &mut Vec<u8>, first: u8, pkid: u16) {
    out.extend_from_slice(&[first, 2, (pkid >> 8) as u8, pkid as u8]);
}

pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;
pub const DISCONNECT: [u8; 2] = [0xE0, 0];

/// A packet from the broker, borrowing the read buffer.
pub enum In<'a> {
    ConnAck {
        code: u8,
    },
    SubAck {
        code: u8,
    },
    Publish {
        qos: u8,
        pkid: u16,
        payload: &'a [u8],
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    /// Anything else (PINGRESP, UNSUBACK): ignored.
    Other,
}

/// The next whole packet at the start of `buf` and its length; `Ok(None)` if incomplete.
pub fn next(buf: &[u8]) -> Result<Option<(In<'_>, usize)>, String> {
    let f = match frame(buf, usize::MAX) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("bad packet from the broker: {e}")),
    };
    let total = f.total_len();
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[f.header_len..total];
    let id = |b: &[u8]| -> Result<u16, String> {
        match b {
            [h, l, ..] => Ok(u16::from_be_bytes([*h, *l])),
            _ => Err(format!("short packet of type {}", f.packet_type())),
        }
    };
    let p = match f.packet_type() {
        2 => In::ConnAck {
            code: *body.get(1).ok_or("short CONNACK")?,
        },
        3 => {
            let q = (f.first_byte >> 1) & 3;
            let tlen = usize::from(id(body)?);
            let mut at = 2 + tlen;
            let mut pkid = 0;
            if q > 0 {
                pkid = id(body.get(at..).ok_or("short PUBLISH")?)?;
                at += 2;
            }
            In::Publish {
                qos: q,
                pkid,
                payload: body.get(at..).ok_or("short PUBLISH")?,
            }
        }
        4 => In::PubAck(id(body)?),
        5 => In::PubRec(id(body)?),
        6 => In::PubRel(id(body)?),
        7 => In::PubComp(id(body)?),
        9 => In::SubAck {
            code: *body.get(2).ok_or("short SUBACK")?,
        },
        _ => In::Other,
    };
    Ok(Some((p, total)))
}
