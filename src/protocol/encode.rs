//! Packet → bytes. Encoding never fails: the only unrepresentable inputs are programming errors
//! (a QoS>0 PUBLISH without packet id, a string over 65535 bytes, a packet over 256 MiB), which
//! `debug_assert!` in debug builds and are degraded to a still well-framed packet in release builds.

use super::types::*;

/// Largest value the 4-byte remaining length can carry [MQTT-2.2.3].
pub(crate) const MAX_REMAINING_LEN: usize = 268_435_455;

/// Appends the encoded packet to `out`.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    let rem = remaining_len(packet);
    debug_assert!(
        rem <= MAX_REMAINING_LEN,
        "packet too large to encode: {rem} bytes"
    );
    out.reserve(1 + varint_len(rem) + rem);
    #[cfg(debug_assertions)]
    let start = out.len();
    match packet {
        Packet::Connect(c) => {
            header(out, 0x10, rem);
            let (name, level): (&[u8], u8) = match c.level {
                ProtocolLevel::V31 => (b"MQIsdp", 3),
                ProtocolLevel::V311 => (b"MQTT", 4),
            };
            bytes(out, name);
            out.push(level);
            out.push(connect_flags(c));
            out.extend_from_slice(&c.keep_alive.to_be_bytes());
            bytes(out, c.client_id.as_bytes());
            if let Some(w) = &c.will {
                bytes(out, w.topic.as_bytes());
                bytes(out, &w.payload);
            }
            if let Some(u) = &c.username {
                bytes(out, u.as_bytes());
            }
            if let Some(p) = &c.password {
                bytes(out, p);
            }
        }
        Packet::ConnAck(a) => {
            header(out, 0x20, rem);
            out.push(u8::from(a.session_present));
            out.push(a.code as u8);
        }
        Packet::Publish(p) => {
            let (first, pkid) = publish_header(p);
            header(out, first, rem);
            bytes(out, p.topic.as_bytes());
            if let Some(id) = pkid {
                out.extend_from_slice(&id.get().to_be_bytes());
            }
            out.extend_from_slice(&p.payload);
        }
        Packet::PubAck(id) => ack(out, 0x40, *id),
        Packet::PubRec(id) => ack(out, 0x50, *id),
        Packet::PubRel(id) => ack(out, 0x62, *id),
        Packet::PubComp(id) => ack(out, 0x70, *id),
        Packet::Subscribe(s) => {
            header(out, 0x82, rem);
            out.extend_from_slice(&s.pkid.get().to_be_bytes());
            for (filter, qos) in &s.filters {
                bytes(out, filter.as_bytes());
                out.push(qos.as_u8());
            }
        }
        Packet::SubAck(s) => {
            header(out, 0x90, rem);
            out.extend_from_slice(&s.pkid.get().to_be_bytes());
            out.extend(s.codes.iter().map(|c| c.as_u8()));
        }
        Packet::Unsubscribe(u) => {
            header(out, 0xA2, rem);
            out.extend_from_slice(&u.pkid.get().to_be_bytes());
            for filter in &u.filters {
                bytes(out, filter.as_bytes());
            }
        }
        Packet::UnsubAck(id) => ack(out, 0xB0, *id),
        Packet::PingReq => header(out, 0xC0, 0),
        Packet::PingResp => header(out, 0xD0, 0),
        Packet::Disconnect => header(out, 0xE0, 0),
    }
    #[cfg(debug_assertions)]
    debug_assert_eq!(out.len() - start, 1 + varint_len(rem) + rem);
}

/// Appends a PUBLISH built from borrowed parts: the fan-out path encodes one copy per subscriber
/// straight from the shared message, without building an owned [`Publish`] for each.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    out: &mut Vec<u8>,
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: &str,
    pkid: Option<PacketId>,
    payload: &[u8],
) {
    let pkid = if qos == QoS::AtMostOnce { None } else { pkid };
    debug_assert!(
        qos == QoS::AtMostOnce || pkid.is_some(),
        "PUBLISH with QoS > 0 needs a packet id"
    );
    let qos_bits = if pkid.is_some() { qos.as_u8() } else { 0 };
    let first = 0x30 | u8::from(dup && qos_bits > 0) << 3 | qos_bits << 1 | u8::from(retain);
    let rem = bytes_len(topic.as_bytes()) + if pkid.is_some() { 2 } else { 0 } + payload.len();
    out.reserve(1 + varint_len(rem) + rem);
    header(out, first, rem);
    bytes(out, topic.as_bytes());
    if let Some(id) = pkid {
        out.extend_from_slice(&id.get().to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Exact number of bytes [`encode`] appends.
pub fn encoded_len(packet: &Packet) -> usize {
    let rem = remaining_len(packet);
    1 + varint_len(rem) + rem
}

/// Length of the variable header plus payload.
fn remaining_len(packet: &Packet) -> usize {
    match packet {
        Packet::Connect(c) => {
            let name = match c.level {
                ProtocolLevel::V31 => 6,
                ProtocolLevel::V311 => 4,
            };
            let mut n = 2 + name + 1 + 1 + 2 + bytes_len(c.client_id.as_bytes());
            if let Some(w) = &c.will {
                n += bytes_len(w.topic.as_bytes()) + bytes_len(&w.payload);
            }
            if let Some(u) = &c.username {
                n += bytes_len(u.as_bytes());
            }
            if let Some(p) = &c.password {
                n += bytes_len(p);
            }
            n
        }
        Packet::ConnAck(_) => 2,
        Packet::Publish(p) => {
            let pkid = if publish_header(p).1.is_some() { 2 } else { 0 };
            bytes_len(p.topic.as_bytes()) + pkid + p.payload.len()
        }
        Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubRel(_)
        | Packet::PubComp(_)
        | Packet::UnsubAck(_) => 2,
        Packet::Subscribe(s) => {
            2 + s
                .filters
                .iter()
                .map(|(f, _)| bytes_len(f.as_bytes()) + 1)
                .sum::<usize>()
        }
        Packet::SubAck(s) => 2 + s.codes.len(),
        Packet::Unsubscribe(u) => {
            2 + u
                .filters
                .iter()
                .map(|f| bytes_len(f.as_bytes()))
                .sum::<usize>()
        }
        Packet::PingReq | Packet::PingResp | Packet::Disconnect => 0,
    }
}

/// First byte and packet id actually written for a PUBLISH. A QoS>0 PUBLISH without packet id is a
/// programming error; release builds send it as QoS 0 (never with a zero id). DUP is only written
/// with QoS>0, because DUP with QoS 0 is malformed [MQTT-3.3.1-2].
fn publish_header(p: &Publish) -> (u8, Option<PacketId>) {
    debug_assert!(
        p.qos == QoS::AtMostOnce || p.pkid.is_some(),
        "PUBLISH with QoS {} has no packet id",
        p.qos.as_u8()
    );
    let (qos, pkid) = match (p.qos, p.pkid) {
        (QoS::AtMostOnce, _) | (_, None) => (0, None),
        (q, Some(id)) => (q.as_u8(), Some(id)),
    };
    let dup = p.dup && qos > 0;
    (
        0x30 | u8::from(dup) << 3 | qos << 1 | u8::from(p.retain),
        pkid,
    )
}

fn connect_flags(c: &Connect) -> u8 {
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | w.qos.as_u8() << 3;
        if w.retain {
            flags |= 0x20;
        }
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    flags
}

fn header(out: &mut Vec<u8>, first: u8, rem: usize) {
    out.push(first);
    write_varint(out, rem);
}

fn ack(out: &mut Vec<u8>, first: u8, id: PacketId) {
    out.push(first);
    out.push(2);
    out.extend_from_slice(&id.get().to_be_bytes());
}

/// Writes the remaining length as the minimal varint (1-4 bytes for valid lengths).
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            return;
        }
    }
}

pub(crate) fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v > 0x7F {
        v >>= 7;
        n += 1;
    }
    n
}

/// A 2-byte length-prefixed field; anything past 65535 bytes is a programming error and is cut.
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    debug_assert!(
        b.len() <= usize::from(u16::MAX),
        "field of {} bytes",
        b.len()
    );
    let n = b.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

fn bytes_len(b: &[u8]) -> usize {
    2 + b.len().min(usize::from(u16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn varint(v: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v));
        out
    }

    #[test]
    fn remaining_length_is_minimal_varint() {
        let table: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(v, bytes) in table {
            assert_eq!(varint(v), bytes, "remaining length {v}");
        }
        assert_eq!(MAX_REMAINING_LEN, 268_435_455);
    }

    fn publish(qos: QoS, dup: bool, pkid: Option<u16>) -> Packet {
        Packet::Publish(Publish {
            dup,
            qos,
            retain: false,
            topic: "t".into(),
            pkid: pkid.and_then(PacketId::new),
            payload: Arc::from(&b"x"[..]),
        })
    }

    fn enc(p: &Packet) -> Vec<u8> {
        let mut out = vec![0xAA]; // encode appends: existing bytes are kept
        encode(p, &mut out);
        assert_eq!(out[0], 0xAA);
        out.remove(0);
        assert_eq!(out.len(), encoded_len(p));
        out
    }

    #[test]
    fn encode_publish_matches_encode() {
        for (qos, pkid) in [
            (QoS::AtMostOnce, None),
            (QoS::AtLeastOnce, Some(7)),
            (QoS::ExactlyOnce, Some(65535)),
        ] {
            for (dup, retain) in [(false, false), (true, true)] {
                let p = Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic: "a/b".into(),
                    pkid: pkid.and_then(PacketId::new),
                    payload: vec![1u8; 300].into(),
                };
                let mut direct = Vec::new();
                encode_publish(
                    &mut direct,
                    p.dup,
                    qos,
                    retain,
                    &p.topic,
                    p.pkid,
                    &p.payload,
                );
                assert_eq!(direct, enc(&Packet::Publish(p)));
            }
        }
    }

    #[test]
    fn publish_pkid_only_with_qos() {
        assert_eq!(
            enc(&publish(QoS::AtMostOnce, false, None)),
            [0x30, 0x04, 0x00, 0x01, b't', b'x']
        );
        assert_eq!(
            enc(&publish(QoS::AtLeastOnce, true, Some(7))),
            [0x3A, 0x06, 0x00, 0x01, b't', 0x00, 0x07, b'x']
        );
        // A stray id on QoS 0 is not written, nor is DUP (which would be malformed with QoS 0).
        assert_eq!(
            enc(&publish(QoS::AtMostOnce, true, Some(7))),
            [0x30, 0x04, 0x00, 0x01, b't', b'x']
        );
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "has no packet id")]
    fn qos1_without_pkid_panics_in_debug() {
        enc(&publish(QoS::AtLeastOnce, false, None));
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn qos1_without_pkid_degrades_to_qos0_in_release() {
        assert_eq!(
            enc(&publish(QoS::ExactlyOnce, true, None)),
            [0x30, 0x04, 0x00, 0x01, b't', b'x']
        );
    }

    #[test]
    fn connect_flags_come_from_the_struct() {
        let mut c = Connect {
            level: ProtocolLevel::V311,
            clean_session: false,
            keep_alive: 0,
            client_id: String::new(),
            will: None,
            username: None,
            password: Some(vec![]),
        };
        // Password without user name is encoded as given (the decoder refuses it).
        assert_eq!(connect_flags(&c), 0x40);
        c.will = Some(LastWill {
            topic: "w".into(),
            payload: Arc::from(&[][..]),
            qos: QoS::ExactlyOnce,
            retain: true,
        });
        c.clean_session = true;
        c.username = Some(String::new());
        assert_eq!(connect_flags(&c), 0x80 | 0x40 | 0x20 | 0x10 | 0x04 | 0x02);
    }
}
