//! Bytes → packet. Works on borrowed slices; the only copies are the owned strings of the packet
//! model and one copy of the PUBLISH payload into an `Arc<[u8]>`. Never panics on any input.

use std::sync::Arc;

use super::error::DecodeError;
use super::types::*;

/// The fixed header of the next packet in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Packet type (upper nibble) and flags (lower nibble).
    pub first_byte: u8,
    /// Length of the fixed header: 1 byte plus 1-4 bytes of remaining length.
    pub header_len: usize,
    /// Length of the variable header plus payload.
    pub remaining_len: usize,
}

impl Frame {
    /// Length of the whole packet, fixed header included.
    pub fn total_len(&self) -> usize {
        self.header_len.saturating_add(self.remaining_len)
    }

    /// Packet type, 0..=15.
    pub fn packet_type(&self) -> u8 {
        self.first_byte >> 4
    }
}

/// Reads the fixed header at the start of `buf`.
///
/// `Ok(None)`: the fixed header itself is not complete yet (need more bytes).
/// `Ok(Some(frame))`: the fixed header is complete; the body may or may not be in `buf` yet (the
/// caller checks `buf.len() >= frame.total_len()`).
/// Both errors are decided from the header alone, so a huge packet is refused before its body is
/// buffered. Non-minimal remaining-length encodings are accepted.
pub fn frame(buf: &[u8], max_packet_size: usize) -> Result<Option<Frame>, DecodeError> {
    let Some(&first_byte) = buf.first() else {
        return Ok(None);
    };
    let mut remaining_len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining_len |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            let frame = Frame {
                first_byte,
                header_len: 2 + i,
                remaining_len,
            };
            let size = frame.total_len();
            if size > max_packet_size {
                return Err(DecodeError::PacketTooLarge {
                    size,
                    max: max_packet_size,
                });
            }
            return Ok(Some(frame));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

/// Checks the first byte of a fixed header on its own: reserved packet types, the flags each type
/// requires, and PUBLISH's QoS 3 and DUP with QoS 0. [`decode`] runs it too; a reader can run it as soon
/// as the header is in, so an invalid packet is refused before its body is waited for or buffered.
pub fn check_first_byte(first_byte: u8) -> Result<(), DecodeError> {
    let packet_type = first_byte >> 4;
    let flags = first_byte & 0x0F;
    let required_flags = match packet_type {
        0 | 15 => return Err(DecodeError::ReservedPacketType(packet_type)),
        3 => {
            let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::PublishQoS3)?;
            if flags & 0x08 != 0 && qos == QoS::AtMostOnce {
                return Err(DecodeError::DupWithQoS0);
            }
            flags
        }
        6 | 8 | 10 => 0b0010,
        _ => 0b0000,
    };
    if flags != required_flags {
        return Err(DecodeError::InvalidFlags { packet_type, flags });
    }
    Ok(())
}

/// Decodes one complete packet. `packet` holds the frame's bytes, fixed header included
/// (`packet.len() == frame.total_len()`; bytes past `total_len()` are ignored, fewer is
/// [`DecodeError::Truncated`]). The fixed header is taken from `frame`.
pub fn decode(frame: &Frame, packet: &[u8]) -> Result<Packet, DecodeError> {
    decode_reusing(frame, packet, None)
}

/// Like [`decode`], but a PUBLISH to the topic `last_topic` names shares that `Arc` rather than
/// allocating its own copy: a client usually publishes to the same topic again and again.
pub fn decode_reusing(
    frame: &Frame,
    packet: &[u8],
    last_topic: Option<&Arc<str>>,
) -> Result<Packet, DecodeError> {
    let body = packet
        .get(frame.header_len..frame.total_len())
        .ok_or(DecodeError::Truncated)?;
    check_first_byte(frame.first_byte)?;
    let packet_type = frame.packet_type();
    let flags = frame.first_byte & 0x0F;
    let mut r = Reader(body);
    let packet = match packet_type {
        1 => Packet::Connect(connect(&mut r)?),
        2 => Packet::ConnAck(connack(&mut r)?),
        3 => return publish(flags, body, last_topic).map(Packet::Publish),
        4 => Packet::PubAck(r.pkid()?),
        5 => Packet::PubRec(r.pkid()?),
        6 => Packet::PubRel(r.pkid()?),
        7 => Packet::PubComp(r.pkid()?),
        8 => Packet::Subscribe(subscribe(&mut r)?),
        9 => Packet::SubAck(suback(&mut r)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r)?),
        11 => Packet::UnsubAck(r.pkid()?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        _ => Packet::Disconnect, // 14; 0 and 15 were refused above
    };
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(packet)
}

fn connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name = r.bytes()?;
    let level_byte = r.u8()?;
    let level = match (name, level_byte) {
        (b"MQTT", 4) => ProtocolLevel::V311,
        (b"MQIsdp", 3) => ProtocolLevel::V31,
        (b"MQTT", _) | (b"MQIsdp", _) => {
            return Err(DecodeError::UnsupportedProtocolLevel(level_byte))
        }
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_session = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::WillFieldsWithoutWillFlag);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::WillQoS3)?;
    if password_flag && !username_flag {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let client_id = r.string()?;
    let will = if will_flag {
        let topic = r.string()?;
        check_topic_name(&topic)?;
        let payload = Arc::from(r.bytes()?);
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.bytes()?.to_vec())
    } else {
        None
    };
    Ok(Connect {
        level,
        clean_session,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn connack(r: &mut Reader<'_>) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::ConnAckReservedFlags(flags));
    }
    let code = match r.u8()? {
        0 => ConnectReturnCode::Accepted,
        1 => ConnectReturnCode::UnacceptableProtocolVersion,
        2 => ConnectReturnCode::IdentifierRejected,
        3 => ConnectReturnCode::ServerUnavailable,
        4 => ConnectReturnCode::BadUserNameOrPassword,
        5 => ConnectReturnCode::NotAuthorized,
        c => return Err(DecodeError::InvalidConnectReturnCode(c)),
    };
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        code,
    })
}

fn publish(flags: u8, body: &[u8], last_topic: Option<&Arc<str>>) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::PublishQoS3)?;
    let dup = flags & 0x08 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupWithQoS0);
    }
    let mut r = Reader(body);
    let topic = r.str()?;
    let topic = match last_topic {
        Some(last) if **last == *topic => last.clone(),
        _ => {
            check_topic_name(topic)?;
            Arc::from(topic)
        }
    };
    let pkid = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.pkid()?)
    };
    Ok(Publish {
        dup,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        pkid,
        payload: Arc::from(r.0),
    })
}

fn subscribe(r: &mut Reader<'_>) -> Result<Subscribe, DecodeError> {
    let pkid = r.pkid()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let b = r.u8()?;
        let qos = if b & 0xFC == 0 { QoS::from_u8(b) } else { None };
        let qos = qos.ok_or(DecodeError::InvalidRequestedQoS(b))?;
        filters.push((filter, qos));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe { pkid, filters })
}

fn suback(r: &mut Reader<'_>) -> Result<SubAck, DecodeError> {
    let pkid = r.pkid()?;
    let codes = r
        .take_rest()
        .iter()
        .map(|&c| match c {
            0x80 => Ok(SubAckCode::Failure),
            c => QoS::from_u8(c)
                .map(SubAckCode::Granted)
                .ok_or(DecodeError::InvalidSubAckCode(c)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SubAck { pkid, codes })
}

fn unsubscribe(r: &mut Reader<'_>) -> Result<Unsubscribe, DecodeError> {
    let pkid = r.pkid()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe { pkid, filters })
}

/// A topic name (not filter): non-empty, no wildcards.
fn check_topic_name(topic: &str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::EmptyTopicName);
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(DecodeError::WildcardInTopicName);
    }
    Ok(())
}

/// A cursor over the remaining bytes of a packet body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, tail) = self.0.split_first().ok_or(DecodeError::Truncated)?;
        self.0 = tail;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let hi = self.u8()?;
        let lo = self.u8()?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    fn pkid(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// 2-byte length-prefixed binary data.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// 2-byte length-prefixed UTF-8 string without U+0000 [MQTT-1.5.3-1], [MQTT-1.5.3-2].
    fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        let s = std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, encoded_len};
    use proptest::prelude::*;

    const NO_LIMIT: usize = usize::MAX;

    fn id(v: u16) -> PacketId {
        PacketId::new(v).expect("non-zero test id")
    }

    /// Frames and decodes a buffer holding exactly one packet.
    fn dec(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let f = frame(bytes, NO_LIMIT)?.expect("complete fixed header");
        assert_eq!(f.total_len(), bytes.len(), "fixture length");
        decode(&f, bytes)
    }

    fn enc(p: &Packet) -> Vec<u8> {
        let mut out = Vec::new();
        encode(p, &mut out);
        assert_eq!(out.len(), encoded_len(p), "encoded_len of {p:?}");
        out
    }

    /// Decoding `bytes` gives `p`, and encoding `p` gives `bytes`.
    fn fixture(bytes: &[u8], p: Packet) {
        assert_eq!(dec(bytes), Ok(p.clone()), "decode {bytes:02x?}");
        assert_eq!(enc(&p), bytes, "encode {p:?}");
    }

    #[test]
    fn publish_reuses_the_last_topic_only_when_equal() {
        let bytes = [0x30, 0x06, 0x00, 0x03, b'a', b'/', b'b', b'x'];
        let f = frame(&bytes, 1024).unwrap().unwrap();
        let topic = |last: &Arc<str>| match decode_reusing(&f, &bytes, Some(last)) {
            Ok(Packet::Publish(p)) => p.topic,
            other => panic!("{other:?}"),
        };
        let same: Arc<str> = "a/b".into();
        assert!(Arc::ptr_eq(&topic(&same), &same));
        let other: Arc<str> = "a/c".into();
        let fresh = topic(&other);
        assert_eq!(&*fresh, "a/b");
        assert!(!Arc::ptr_eq(&fresh, &other));
    }

    fn err(bytes: &[u8], e: DecodeError) {
        assert_eq!(dec(bytes), Err(e), "decode {bytes:02x?}");
    }

    fn connect(level: ProtocolLevel) -> Connect {
        Connect {
            level,
            clean_session: true,
            keep_alive: 60,
            client_id: String::new(),
            will: None,
            username: None,
            password: None,
        }
    }

    // ---- 1. annotated fixtures -------------------------------------------------------------

    #[test]
    fn fixture_connect_v311_minimal() {
        #[rustfmt::skip]
        let bytes = [
            0x10, 0x0C,                         // CONNECT, remaining length 12
            0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
            0x04,                               // level 4 = 3.1.1
            0x02,                               // flags: clean session
            0x00, 0x3C,                         // keep alive 60
            0x00, 0x00,                         // client id ""
        ];
        fixture(&bytes, Packet::Connect(connect(ProtocolLevel::V311)));
    }

    #[test]
    fn fixture_connect_v311_full() {
        #[rustfmt::skip]
        let bytes = [
            0x10, 0x1D,                         // CONNECT, remaining length 29
            0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
            0x04,                               // level 4
            0xEE,                               // user, password, will retain, will QoS 1, will, clean
            0x00, 0x0A,                         // keep alive 10
            0x00, 0x02, b'c', b'1',             // client id "c1"
            0x00, 0x03, b'w', b'/', b't',       // will topic "w/t"
            0x00, 0x02, 0x01, 0x02,             // will payload [1, 2]
            0x00, 0x01, b'u',                   // user name "u"
            0x00, 0x01, 0xFF,                   // password [0xFF] (binary)
        ];
        fixture(
            &bytes,
            Packet::Connect(Connect {
                level: ProtocolLevel::V311,
                clean_session: true,
                keep_alive: 10,
                client_id: "c1".into(),
                will: Some(LastWill {
                    topic: "w/t".into(),
                    payload: Arc::from(&[1u8, 2][..]),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                }),
                username: Some("u".into()),
                password: Some(vec![0xFF]),
            }),
        );
    }

    #[test]
    fn fixture_connect_v31() {
        #[rustfmt::skip]
        let bytes = [
            0x10, 0x11,                                     // CONNECT, remaining length 17
            0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name
            0x03,                                           // level 3 = 3.1
            0x00,                                           // no flags
            0x00, 0x0A,                                     // keep alive 10
            0x00, 0x03, b'a', b'b', b'c',                   // client id "abc"
        ];
        let mut c = connect(ProtocolLevel::V31);
        c.clean_session = false;
        c.keep_alive = 10;
        c.client_id = "abc".into();
        fixture(&bytes, Packet::Connect(c));
    }

    #[test]
    fn fixture_connack() {
        // CONNACK, remaining length 2, session present, accepted
        fixture(
            &[0x20, 0x02, 0x01, 0x00],
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ConnectReturnCode::Accepted,
            }),
        );
        let codes = [
            ConnectReturnCode::Accepted,
            ConnectReturnCode::UnacceptableProtocolVersion,
            ConnectReturnCode::IdentifierRejected,
            ConnectReturnCode::ServerUnavailable,
            ConnectReturnCode::BadUserNameOrPassword,
            ConnectReturnCode::NotAuthorized,
        ];
        for (i, code) in codes.into_iter().enumerate() {
            fixture(
                &[0x20, 0x02, 0x00, i as u8],
                Packet::ConnAck(ConnAck {
                    session_present: false,
                    code,
                }),
            );
        }
    }

    #[test]
    fn fixture_publish() {
        #[rustfmt::skip]
        let qos0 = [
            0x30, 0x07,                   // PUBLISH QoS 0, remaining length 7
            0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
            b'h', b'i',                   // payload "hi" (no packet id at QoS 0)
        ];
        fixture(
            &qos0,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "a/b".into(),
                pkid: None,
                payload: Arc::from(&b"hi"[..]),
            }),
        );
        #[rustfmt::skip]
        let qos1 = [
            0x3B, 0x08,          // PUBLISH DUP, QoS 1, RETAIN; remaining length 8
            0x00, 0x01, b't',    // topic "t"
            0x00, 0x0A,          // packet id 10
            0x01, 0x02, 0x03,    // payload
        ];
        fixture(
            &qos1,
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: "t".into(),
                pkid: Some(id(10)),
                payload: Arc::from(&[1u8, 2, 3][..]),
            }),
        );
        #[rustfmt::skip]
        let qos2 = [
            0x34, 0x05,          // PUBLISH QoS 2; remaining length 5
            0x00, 0x01, b't',    // topic "t"
            0x12, 0x34,          // packet id 0x1234, empty payload
        ];
        fixture(
            &qos2,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "t".into(),
                pkid: Some(id(0x1234)),
                payload: Arc::from(&[][..]),
            }),
        );
    }

    #[test]
    fn fixture_acks() {
        fixture(&[0x40, 0x02, 0x00, 0x01], Packet::PubAck(id(1))); // PUBACK 1
        fixture(&[0x50, 0x02, 0x12, 0x34], Packet::PubRec(id(0x1234))); // PUBREC
        fixture(&[0x62, 0x02, 0xFF, 0xFF], Packet::PubRel(id(0xFFFF))); // PUBREL, flags 0b0010
        fixture(&[0x70, 0x02, 0x01, 0x00], Packet::PubComp(id(0x100))); // PUBCOMP
        fixture(&[0xB0, 0x02, 0x00, 0x0B], Packet::UnsubAck(id(11))); // UNSUBACK
        fixture(&[0xC0, 0x00], Packet::PingReq);
        fixture(&[0xD0, 0x00], Packet::PingResp);
        fixture(&[0xE0, 0x00], Packet::Disconnect);
    }

    #[test]
    fn fixture_subscribe_suback() {
        #[rustfmt::skip]
        let sub = [
            0x82, 0x0C,                         // SUBSCRIBE (flags 0b0010), remaining length 12
            0x00, 0x0A,                         // packet id 10
            0x00, 0x03, b'a', b'/', b'b', 0x01, // "a/b" QoS 1
            0x00, 0x01, b'#', 0x02,             // "#" QoS 2
        ];
        fixture(
            &sub,
            Packet::Subscribe(Subscribe {
                pkid: id(10),
                filters: vec![
                    ("a/b".into(), QoS::AtLeastOnce),
                    ("#".into(), QoS::ExactlyOnce),
                ],
            }),
        );
        #[rustfmt::skip]
        let suback = [
            0x90, 0x06,             // SUBACK, remaining length 6
            0x00, 0x0A,             // packet id 10
            0x00, 0x01, 0x02, 0x80, // granted 0, 1, 2, failure
        ];
        fixture(
            &suback,
            Packet::SubAck(SubAck {
                pkid: id(10),
                codes: vec![
                    SubAckCode::Granted(QoS::AtMostOnce),
                    SubAckCode::Granted(QoS::AtLeastOnce),
                    SubAckCode::Granted(QoS::ExactlyOnce),
                    SubAckCode::Failure,
                ],
            }),
        );
    }

    #[test]
    fn fixture_unsubscribe() {
        #[rustfmt::skip]
        let bytes = [
            0xA2, 0x09,                   // UNSUBSCRIBE (flags 0b0010), remaining length 9
            0x00, 0x0B,                   // packet id 11
            0x00, 0x03, b'a', b'/', b'b', // "a/b"
            0x00, 0x00,                   // "" (filters are not validated by the codec)
        ];
        fixture(
            &bytes,
            Packet::Unsubscribe(Unsubscribe {
                pkid: id(11),
                filters: vec!["a/b".into(), String::new()],
            }),
        );
    }

    // ---- 2. round trips --------------------------------------------------------------------

    fn round_trip(p: &Packet) {
        let bytes = enc(p);
        assert_eq!(dec(&bytes).as_ref(), Ok(p), "round trip {bytes:02x?}");
    }

    #[test]
    fn round_trip_connect_all_combinations() {
        let wills = [
            None,
            Some(LastWill {
                topic: "clients/€/gone".into(),
                payload: Arc::from(&[0u8, 0xFF, 0x10][..]),
                qos: QoS::ExactlyOnce,
                retain: true,
            }),
            Some(LastWill {
                topic: "w".into(),
                payload: Arc::from(&[][..]),
                qos: QoS::AtMostOnce,
                retain: false,
            }),
        ];
        let creds = [
            (None, None),
            (Some("user".to_string()), None),
            (Some(String::new()), Some(vec![])),
            (Some("ü".to_string()), Some(vec![0, 0xC3, 0x28])), // password need not be UTF-8
        ];
        let mut n = 0;
        for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
            for clean_session in [false, true] {
                for will in &wills {
                    for (username, password) in &creds {
                        round_trip(&Packet::Connect(Connect {
                            level,
                            clean_session,
                            keep_alive: 0xFFFF,
                            client_id: "client-1".into(),
                            will: will.clone(),
                            username: username.clone(),
                            password: password.clone(),
                        }));
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 48);
    }

    #[test]
    fn round_trip_every_other_type() {
        let packets = [
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ConnectReturnCode::NotAuthorized,
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: "/".into(),
                pkid: None,
                payload: Arc::from(&[][..]),
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "a b/ü".into(),
                pkid: Some(id(65535)),
                payload: Arc::from(vec![7u8; 300]),
            }),
            Packet::PubAck(id(1)),
            Packet::PubRec(id(2)),
            Packet::PubRel(id(3)),
            Packet::PubComp(id(4)),
            Packet::Subscribe(Subscribe {
                pkid: id(5),
                filters: vec![("+/#".into(), QoS::AtMostOnce)],
            }),
            Packet::SubAck(SubAck {
                pkid: id(6),
                codes: vec![SubAckCode::Failure],
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: id(7),
                filters: vec!["a/+".into()],
            }),
            Packet::UnsubAck(id(8)),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect,
        ];
        for p in &packets {
            round_trip(p);
        }
    }

    // ---- 3. remaining length ---------------------------------------------------------------

    #[test]
    fn remaining_length_boundaries() {
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
        for &(len, varint) in table {
            let mut header = vec![0x30];
            header.extend_from_slice(varint);
            // The header alone is enough for `frame`.
            let f = frame(&header, NO_LIMIT).unwrap().unwrap();
            assert_eq!(f.header_len, 1 + varint.len(), "length {len}");
            assert_eq!(f.remaining_len, len);
            assert_eq!(f.total_len(), 1 + varint.len() + len);
            assert_eq!(f.packet_type(), 3);
            // Any prefix of the header is incomplete.
            for cut in 0..header.len() {
                assert_eq!(frame(&header[..cut], NO_LIMIT), Ok(None));
            }
            // Real packets of that size encode with that header and decode back (up to 2 MiB).
            if (3..=2_097_152).contains(&len) {
                let p = Packet::Publish(Publish {
                    dup: false,
                    qos: QoS::AtMostOnce,
                    retain: false,
                    topic: "t".into(),
                    pkid: None,
                    payload: Arc::from(vec![0xA5; len - 3]),
                });
                let bytes = enc(&p);
                assert_eq!(&bytes[..header.len()], &header[..]);
                assert_eq!(bytes.len(), f.total_len());
                assert_eq!(dec(&bytes), Ok(p));
            }
        }
    }

    #[test]
    fn remaining_length_five_bytes_is_malformed() {
        let e = Err(DecodeError::MalformedRemainingLength);
        assert_eq!(frame(&[0x30, 0x80, 0x80, 0x80, 0x80], NO_LIMIT), e);
        assert_eq!(frame(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], NO_LIMIT), e);
        assert_eq!(frame(&[0xC0, 0x80, 0x80, 0x80, 0x80, 0x00], 10), e);
        // Four bytes with continuation but no fifth yet: already malformed, no need to wait.
        assert_eq!(frame(&[0x30, 0x80, 0x80, 0x80], NO_LIMIT), Ok(None));
    }

    #[test]
    fn remaining_length_non_minimal_accepted() {
        let f = frame(&[0xC0, 0x80, 0x00], NO_LIMIT).unwrap().unwrap();
        assert_eq!((f.header_len, f.remaining_len), (3, 0));
        let bytes = [0xC0, 0x80, 0x80, 0x80, 0x00];
        let f = frame(&bytes, NO_LIMIT).unwrap().unwrap();
        assert_eq!((f.header_len, f.remaining_len), (5, 0));
        assert_eq!(decode(&f, &bytes), Ok(Packet::PingReq));
        let bytes = [0x40, 0x82, 0x00, 0x00, 0x01]; // PUBACK, length 2 in two bytes
        let f = frame(&bytes, NO_LIMIT).unwrap().unwrap();
        assert_eq!(decode(&f, &bytes), Ok(Packet::PubAck(id(1))));
    }

    #[test]
    fn packet_too_large_from_header_alone() {
        // 268435455 announced, nothing of the body present.
        assert_eq!(
            frame(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], 1024),
            Err(DecodeError::PacketTooLarge {
                size: 268_435_460,
                max: 1024
            })
        );
        // The limit applies to the whole packet, fixed header included; equal is fine.
        assert!(frame(&[0x30, 0x7F], 129).unwrap().is_some());
        assert_eq!(
            frame(&[0x30, 0x7F], 128),
            Err(DecodeError::PacketTooLarge {
                size: 129,
                max: 128
            })
        );
        // Incomplete header: no decision yet.
        assert_eq!(frame(&[0x30, 0xFF], 1), Ok(None));
        assert_eq!(frame(&[], 0), Ok(None));
    }

    #[test]
    fn frame_with_body_not_yet_buffered() {
        let bytes = [0x40, 0x02, 0x00, 0x01];
        for cut in 2..bytes.len() {
            let f = frame(&bytes[..cut], NO_LIMIT).unwrap().unwrap();
            assert_eq!(f.total_len(), 4);
            assert_eq!(decode(&f, &bytes[..cut]), Err(DecodeError::Truncated));
        }
        // Extra bytes after the frame (the next packet) are not this packet's business.
        let two = [0x40, 0x02, 0x00, 0x01, 0xC0, 0x00];
        let f = frame(&two, NO_LIMIT).unwrap().unwrap();
        assert_eq!(decode(&f, &two), Ok(Packet::PubAck(id(1))));
        let rest = &two[f.total_len()..];
        let g = frame(rest, NO_LIMIT).unwrap().unwrap();
        assert_eq!(decode(&g, rest), Ok(Packet::PingReq));
    }

    // ---- 4. all 256 first bytes ------------------------------------------------------------

    /// A minimal valid body for each packet type.
    fn minimal_body(packet_type: u8) -> Vec<u8> {
        match packet_type {
            1 => vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 0],
            2 => vec![0, 0],
            3 => vec![0, 1, b't', 0, 1], // topic "t", then packet id 1 (or payload at QoS 0)
            4..=7 | 11 => vec![0, 1],
            8 => vec![0, 1, 0, 1, b't', 0],
            9 => vec![0, 1, 0],
            10 => vec![0, 1, 0, 1, b't'],
            _ => vec![],
        }
    }

    #[test]
    fn all_first_bytes() {
        #[rustfmt::skip]
        const ACCEPTED: [u8; 23] = [
            0x10,                                           // CONNECT
            0x20,                                           // CONNACK
            0x30, 0x31,                                     // PUBLISH QoS 0 (± RETAIN)
            0x32, 0x33,                                     // PUBLISH QoS 1 (± RETAIN)
            0x34, 0x35,                                     // PUBLISH QoS 2 (± RETAIN)
            0x3A, 0x3B,                                     // PUBLISH DUP QoS 1 (± RETAIN)
            0x3C, 0x3D,                                     // PUBLISH DUP QoS 2 (± RETAIN)
            0x40, 0x50, 0x62, 0x70,                         // PUBACK, PUBREC, PUBREL, PUBCOMP
            0x82, 0x90, 0xA2, 0xB0,                         // SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
            0xC0, 0xD0, 0xE0,                               // PINGREQ, PINGRESP, DISCONNECT
        ];
        let mut accepted = Vec::new();
        for b in 0..=255u8 {
            let (t, flags) = (b >> 4, b & 0x0F);
            let mut bytes = vec![b];
            let body = minimal_body(t);
            bytes.push(body.len() as u8);
            bytes.extend_from_slice(&body);
            let result = dec(&bytes);
            let expected_err = match t {
                0 | 15 => Some(DecodeError::ReservedPacketType(t)),
                3 if flags & 0x06 == 0x06 => Some(DecodeError::PublishQoS3),
                3 if flags & 0x0E == 0x08 => Some(DecodeError::DupWithQoS0),
                3 => None,
                6 | 8 | 10 if flags != 0b0010 => Some(DecodeError::InvalidFlags {
                    packet_type: t,
                    flags,
                }),
                6 | 8 | 10 => None,
                _ if flags != 0 => Some(DecodeError::InvalidFlags {
                    packet_type: t,
                    flags,
                }),
                _ => None,
            };
            match expected_err {
                Some(e) => assert_eq!(result, Err(e), "first byte {b:#04x}"),
                None => {
                    let p = result.unwrap_or_else(|e| panic!("first byte {b:#04x}: {e}"));
                    assert_eq!(p.name(), NAMES[usize::from(t)]);
                    accepted.push(b);
                }
            }
        }
        assert_eq!(accepted, ACCEPTED);
    }

    const NAMES: [&str; 16] = [
        "",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "",
    ];

    // ---- 5. malformed packets --------------------------------------------------------------

    /// A CONNECT with the given protocol name, level, flags and payload (keep alive 0).
    fn connect_bytes(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, flags, 0, 0]);
        body.extend_from_slice(payload);
        let mut bytes = vec![0x10, body.len() as u8];
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn malformed_connect_protocol() {
        use DecodeError::*;
        let id0 = [0, 0];
        err(&connect_bytes(b"MQTX", 4, 2, &id0), InvalidProtocolName);
        err(&connect_bytes(b"mqtt", 4, 2, &id0), InvalidProtocolName);
        err(&connect_bytes(b"", 4, 2, &id0), InvalidProtocolName);
        err(&connect_bytes(b"MQIsdpX", 3, 2, &id0), InvalidProtocolName);
        err(
            &connect_bytes(&[0xFF, 0xFE], 4, 2, &id0),
            InvalidProtocolName,
        );
        err(
            &connect_bytes(b"MQTT", 3, 2, &id0),
            UnsupportedProtocolLevel(3),
        );
        err(
            &connect_bytes(b"MQIsdp", 4, 2, &id0),
            UnsupportedProtocolLevel(4),
        );
        err(
            &connect_bytes(b"MQTT", 0, 2, &id0),
            UnsupportedProtocolLevel(0),
        );
        // MQTT 5: its properties are not parsed; the level alone decides.
        let v5 = connect_bytes(b"MQTT", 5, 2, &[0x05, 0x11, 0, 0, 0, 10, 0, 0]);
        let e = dec(&v5).unwrap_err();
        assert_eq!(e, UnsupportedProtocolLevel(5));
        assert!(e.is_unsupported_protocol_level());
        // Even with a broken rest of the packet.
        err(
            &connect_bytes(b"MQTT", 5, 0xFF, &[]),
            UnsupportedProtocolLevel(5),
        );
    }

    #[test]
    fn malformed_connect_flags() {
        use DecodeError::*;
        let id0 = [0, 0];
        let c = |flags: u8, payload: &[u8]| connect_bytes(b"MQTT", 4, flags, payload);
        err(&c(0x01, &id0), ConnectReservedFlag);
        err(&c(0x03, &id0), ConnectReservedFlag);
        err(&c(0x08, &id0), WillFieldsWithoutWillFlag); // will QoS 1, no will
        err(&c(0x10, &id0), WillFieldsWithoutWillFlag); // will QoS 2, no will
        err(&c(0x18, &id0), WillFieldsWithoutWillFlag); // will QoS 3, no will
        err(&c(0x20, &id0), WillFieldsWithoutWillFlag); // will retain, no will
        let will = [0, 0, 0, 1, b'w', 0, 0];
        err(&c(0x1C, &will), WillQoS3);
        err(&c(0x3C, &will), WillQoS3);
        err(&c(0x42, &[0, 0, 0, 0]), PasswordWithoutUsername);
        // Sanity: the same will with QoS 2 is fine.
        assert!(dec(&c(0x14, &will)).is_ok());
        // Will topic is a topic name.
        err(&c(0x04, &[0, 0, 0, 0, 0, 0]), EmptyTopicName);
        err(
            &c(0x04, &[0, 0, 0, 3, b'a', b'/', b'+', 0, 0]),
            WildcardInTopicName,
        );
        err(&c(0x04, &[0, 0, 0, 1, b'#', 0, 0]), WildcardInTopicName);
        // Strings in CONNECT.
        err(&c(0x02, &[0, 2, 0xC3, 0x28]), InvalidUtf8); // client id
        err(&c(0x02, &[0, 2, b'a', 0]), NullCharacter); // client id
        err(&c(0x82, &[0, 0, 0, 1, 0]), NullCharacter); // user name
        err(&c(0x06, &[0, 0, 0, 1, 0xFF, 0, 0]), InvalidUtf8); // will topic
                                                               // Binary fields accept anything.
        assert!(dec(&c(0xC2, &[0, 0, 0, 0, 0, 2, 0, 0xFF])).is_ok());
    }

    #[test]
    fn malformed_connect_length() {
        use DecodeError::*;
        let c = |flags: u8, payload: &[u8]| connect_bytes(b"MQTT", 4, flags, payload);
        err(&c(0x02, &[]), Truncated); // no client id
        err(&c(0x02, &[0, 3, b'a']), Truncated); // client id runs past the end
        err(&c(0x06, &[0, 0, 0, 1, b'w']), Truncated); // will payload missing
        err(&c(0x82, &[0, 0]), Truncated); // user name missing
        err(&c(0xC2, &[0, 0, 0, 0]), Truncated); // password missing
        err(&c(0x02, &[0, 0, 0]), TrailingBytes);
        err(&c(0x02, &[0, 0, 0, 0]), TrailingBytes); // a user name without the flag
        err(&[0x10, 0x03, 0x00, 0x04, b'M'], Truncated); // protocol name cut
        err(&[0x10, 0x06, 0x00, 0x04, b'M', b'Q', b'T', b'T'], Truncated); // no level
        err(&[0x10, 0x00], Truncated);
    }

    #[test]
    fn malformed_publish() {
        use DecodeError::*;
        err(&[0x36, 0x05, 0, 1, b't', 0, 1], PublishQoS3);
        err(&[0x3F, 0x05, 0, 1, b't', 0, 1], PublishQoS3);
        err(&[0x38, 0x03, 0, 1, b't'], DupWithQoS0);
        err(&[0x39, 0x03, 0, 1, b't'], DupWithQoS0);
        err(&[0x30, 0x02, 0, 0], EmptyTopicName);
        err(&[0x30, 0x04, 0, 2, b'a', b'#'], WildcardInTopicName);
        err(&[0x30, 0x03, 0, 1, b'+'], WildcardInTopicName);
        err(&[0x32, 0x05, 0, 1, b't', 0, 0], ZeroPacketId);
        err(&[0x34, 0x05, 0, 1, b't', 0, 0], ZeroPacketId);
        err(&[0x32, 0x04, 0, 1, b't', 0], Truncated); // half a packet id
        err(&[0x32, 0x03, 0, 1, b't'], Truncated); // no packet id
        err(&[0x30, 0x03, 0, 5, b't'], Truncated); // topic past the end
        err(&[0x30, 0x01, 0], Truncated);
        err(&[0x30, 0x00], Truncated);
        err(&[0x30, 0x04, 0, 2, 0xC3, 0x28], InvalidUtf8);
        err(&[0x30, 0x05, 0, 3, 0xED, 0xA0, 0x80], InvalidUtf8); // UTF-16 surrogate
        err(&[0x30, 0x04, 0, 2, 0xC0, 0x80], InvalidUtf8); // overlong U+0000
        err(&[0x30, 0x05, 0, 3, b'a', 0, b'b'], NullCharacter);
        // Payload is the rest: no trailing-bytes check, anything goes.
        let p = dec(&[0x30, 0x05, 0, 1, b't', 0, 0xFF]).unwrap();
        let Packet::Publish(p) = p else { panic!() };
        assert_eq!(&p.payload[..], &[0, 0xFF]);
    }

    #[test]
    fn malformed_acks() {
        use DecodeError::*;
        for first in [0x40, 0x50, 0x62, 0x70, 0xB0] {
            err(&[first, 0x02, 0, 0], ZeroPacketId);
            err(&[first, 0x01, 0], Truncated);
            err(&[first, 0x00], Truncated);
            err(&[first, 0x03, 0, 1, 0], TrailingBytes);
        }
        for first in [0xC0, 0xD0, 0xE0] {
            err(&[first, 0x01, 0], TrailingBytes);
        }
        err(
            &[0x60, 0x02, 0, 1],
            InvalidFlags {
                packet_type: 6,
                flags: 0,
            },
        );
        err(
            &[0x42, 0x02, 0, 1],
            InvalidFlags {
                packet_type: 4,
                flags: 2,
            },
        );
        err(
            &[0xE1, 0x00],
            InvalidFlags {
                packet_type: 14,
                flags: 1,
            },
        );
        err(&[0x00, 0x00], ReservedPacketType(0));
        err(&[0xF0, 0x00], ReservedPacketType(15));
    }

    #[test]
    fn malformed_connack() {
        use DecodeError::*;
        err(&[0x20, 0x02, 0x02, 0x00], ConnAckReservedFlags(0x02));
        err(&[0x20, 0x02, 0x80, 0x00], ConnAckReservedFlags(0x80));
        err(&[0x20, 0x02, 0x00, 0x06], InvalidConnectReturnCode(6));
        err(&[0x20, 0x02, 0x00, 0xFF], InvalidConnectReturnCode(0xFF));
        err(&[0x20, 0x01, 0x00], Truncated);
        err(&[0x20, 0x03, 0x00, 0x00, 0x00], TrailingBytes);
    }

    #[test]
    fn malformed_subscribe() {
        use DecodeError::*;
        err(&[0x82, 0x02, 0, 1], NoSubscribeFilters);
        err(&[0x82, 0x06, 0, 0, 0, 1, b't', 0], ZeroPacketId);
        for bad in [0x03, 0x04, 0x40, 0x80, 0x81, 0xFC, 0xFF] {
            err(
                &[0x82, 0x06, 0, 1, 0, 1, b't', bad],
                InvalidRequestedQoS(bad),
            );
        }
        err(&[0x82, 0x05, 0, 1, 0, 1, b't'], Truncated); // missing QoS byte
        err(&[0x82, 0x05, 0, 1, 0, 5, b't'], Truncated); // filter past the end
        err(&[0x82, 0x03, 0, 1, 0], Truncated); // half a length
        err(&[0x82, 0x06, 0, 1, 0, 1, 0, 0], NullCharacter);
        err(&[0x82, 0x06, 0, 1, 0, 1, 0xFF, 0], InvalidUtf8);
        // Filters are not validated: empty, misplaced wildcards are the broker's business.
        let p = dec(&[
            0x82, 0x0D, 0, 1, 0, 0, 1, 0, 5, b'a', b'/', b'#', b'/', b'b', 2,
        ])
        .unwrap();
        assert_eq!(
            p,
            Packet::Subscribe(Subscribe {
                pkid: id(1),
                filters: vec![
                    (String::new(), QoS::AtLeastOnce),
                    ("a/#/b".into(), QoS::ExactlyOnce)
                ],
            })
        );
    }

    #[test]
    fn malformed_suback() {
        use DecodeError::*;
        for bad in [0x03, 0x04, 0x7F, 0x81, 0xFF] {
            err(&[0x90, 0x03, 0, 1, bad], InvalidSubAckCode(bad));
        }
        err(&[0x90, 0x03, 0, 0, 0], ZeroPacketId);
        err(&[0x90, 0x01, 0], Truncated);
    }

    #[test]
    fn malformed_unsubscribe() {
        use DecodeError::*;
        err(&[0xA2, 0x02, 0, 1], NoUnsubscribeFilters);
        err(&[0xA2, 0x05, 0, 0, 0, 1, b't'], ZeroPacketId);
        err(&[0xA2, 0x04, 0, 1, 0, 1], Truncated);
        err(&[0xA2, 0x05, 0, 1, 0, 1, 0], NullCharacter);
        err(&[0xA2, 0x05, 0, 1, 0, 1, 0x80], InvalidUtf8);
        let p = dec(&[0xA2, 0x08, 0, 1, 0, 0, 0, 2, b'+', b'x']).unwrap();
        assert_eq!(
            p,
            Packet::Unsubscribe(Unsubscribe {
                pkid: id(1),
                filters: vec![String::new(), "+x".into()],
            })
        );
    }

    #[test]
    fn decode_with_inconsistent_frame_does_not_panic() {
        let bytes = [0x40, 0x02, 0x00, 0x01];
        for (header_len, remaining_len) in
            [(0, 0), (5, 0), (usize::MAX, 1), (2, usize::MAX), (3, 0)]
        {
            let f = Frame {
                first_byte: 0x40,
                header_len,
                remaining_len,
            };
            assert!(decode(&f, &bytes).is_err());
        }
    }

    // ---- 6. property tests -----------------------------------------------------------------

    /// A UTF-8 string without U+0000.
    fn string() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,12}"
    }

    /// A valid topic name: non-empty, no wildcards, no U+0000.
    fn topic() -> impl Strategy<Value = String> {
        "[^\u{0}+#]{1,12}"
    }

    fn qos() -> impl Strategy<Value = QoS> {
        prop_oneof![
            Just(QoS::AtMostOnce),
            Just(QoS::AtLeastOnce),
            Just(QoS::ExactlyOnce)
        ]
    }

    fn pkid() -> impl Strategy<Value = PacketId> {
        (1..=u16::MAX).prop_map(id)
    }

    fn payload() -> impl Strategy<Value = Arc<[u8]>> {
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Arc::from)
    }

    fn connect_strategy() -> impl Strategy<Value = Connect> {
        let will =
            (topic(), payload(), qos(), any::<bool>()).prop_map(|(topic, payload, qos, retain)| {
                LastWill {
                    topic,
                    payload,
                    qos,
                    retain,
                }
            });
        // A password only with a user name, as the decoder requires [MQTT-3.1.2-22].
        let creds = prop_oneof![
            Just((None, None)),
            string().prop_map(|u| (Some(u), None)),
            (string(), prop::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(u, p)| (Some(u), Some(p))),
        ];
        (
            prop_oneof![Just(ProtocolLevel::V31), Just(ProtocolLevel::V311)],
            any::<bool>(),
            any::<u16>(),
            string(),
            prop::option::of(will),
            creds,
        )
            .prop_map(
                |(level, clean_session, keep_alive, client_id, will, (username, password))| {
                    Connect {
                        level,
                        clean_session,
                        keep_alive,
                        client_id,
                        will,
                        username,
                        password,
                    }
                },
            )
    }

    fn publish_strategy() -> impl Strategy<Value = Publish> {
        (
            qos(),
            any::<bool>(),
            any::<bool>(),
            topic(),
            pkid(),
            payload(),
        )
            .prop_map(|(qos, dup, retain, topic, pkid, payload)| {
                let qos0 = qos == QoS::AtMostOnce;
                Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic: topic.into(),
                    pkid: (!qos0).then_some(pkid),
                    payload,
                }
            })
    }

    fn connack_strategy() -> impl Strategy<Value = ConnAck> {
        let code = prop_oneof![
            Just(ConnectReturnCode::Accepted),
            Just(ConnectReturnCode::UnacceptableProtocolVersion),
            Just(ConnectReturnCode::IdentifierRejected),
            Just(ConnectReturnCode::ServerUnavailable),
            Just(ConnectReturnCode::BadUserNameOrPassword),
            Just(ConnectReturnCode::NotAuthorized),
        ];
        (any::<bool>(), code).prop_map(|(session_present, code)| ConnAck {
            session_present,
            code,
        })
    }

    fn packet_strategy() -> impl Strategy<Value = Packet> {
        let suback_code = prop_oneof![
            qos().prop_map(SubAckCode::Granted),
            Just(SubAckCode::Failure)
        ];
        prop_oneof![
            connect_strategy().prop_map(Packet::Connect),
            connack_strategy().prop_map(Packet::ConnAck),
            publish_strategy().prop_map(Packet::Publish),
            pkid().prop_map(Packet::PubAck),
            pkid().prop_map(Packet::PubRec),
            pkid().prop_map(Packet::PubRel),
            pkid().prop_map(Packet::PubComp),
            (pkid(), prop::collection::vec((string(), qos()), 1..5))
                .prop_map(|(pkid, filters)| Packet::Subscribe(Subscribe { pkid, filters })),
            (pkid(), prop::collection::vec(suback_code, 0..5))
                .prop_map(|(pkid, codes)| Packet::SubAck(SubAck { pkid, codes })),
            (pkid(), prop::collection::vec(string(), 1..5))
                .prop_map(|(pkid, filters)| Packet::Unsubscribe(Unsubscribe { pkid, filters })),
            pkid().prop_map(Packet::UnsubAck),
            Just(Packet::PingReq),
            Just(Packet::PingResp),
            Just(Packet::Disconnect),
        ]
    }

    /// Frames and, when complete, decodes: the result does not matter, only that nothing panics.
    fn try_decode(bytes: &[u8], max: usize) {
        if let Ok(Some(f)) = frame(bytes, max) {
            assert!(f.header_len >= 2 && f.header_len <= 5);
            let _ = decode(&f, bytes);
            if let Some(packet) = bytes.get(..f.total_len()) {
                let _ = decode(&f, packet);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn prop_round_trip(p in packet_strategy()) {
            let bytes = enc(&p);
            prop_assert_eq!(bytes.len(), encoded_len(&p));
            let f = frame(&bytes, bytes.len()).unwrap().unwrap();
            prop_assert_eq!(f.total_len(), bytes.len());
            prop_assert_eq!(decode(&f, &bytes), Ok(p));
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128), max in 0usize..256) {
            try_decode(&bytes, max);
            try_decode(&bytes, NO_LIMIT);
        }

        /// Any first byte with a well-framed arbitrary body reaches the body parsers.
        #[test]
        fn prop_framed_arbitrary_body_never_panics(first in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = vec![first, body.len() as u8];
            bytes.extend_from_slice(&body);
            let f = frame(&bytes, NO_LIMIT).unwrap().unwrap();
            let _ = decode(&f, &bytes);
        }

        /// Valid packets with bytes overwritten or cut off.
        #[test]
        fn prop_mutated_packets_never_panic(
            p in packet_strategy(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = enc(&p);
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            try_decode(&bytes, NO_LIMIT);
            let n = cut.index(bytes.len() + 1);
            try_decode(&bytes[..n], NO_LIMIT);
        }

        #[test]
        fn prop_arbitrary_frame_never_panics(
            first_byte in any::<u8>(),
            header_len in prop_oneof![0usize..8, Just(usize::MAX)],
            remaining_len in prop_oneof![0usize..64, Just(usize::MAX)],
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let f = Frame { first_byte, header_len, remaining_len };
            let _ = decode(&f, &bytes);
        }
    }
}
