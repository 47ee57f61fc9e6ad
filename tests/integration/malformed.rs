//! Malformed input (MQTT 3.1.1 §4.8, [MQTT-4.8.0-1]): each case closes only the offending connection, the
//! broker does not panic, and established clients and retained messages are unaffected.

use std::net::Shutdown;
use std::time::Duration;

use crate::common::*;
use rumqttc::QoS;

/// A broker with an established subscriber on `mf/#` and a retained message on `mf/retained`.
struct Fixture {
    broker: TestBroker,
    sub: TestClient,
    publisher: TestClient,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(settings())
    }

    fn with(settings: shardmq::Settings) -> Fixture {
        let broker = TestBroker::with(settings);
        let publisher = TestClient::connect_to(broker.addr, "mf-pub");
        publisher.publish_acked("mf/retained", QoS::AtLeastOnce, true, "kept");
        let sub = TestClient::connect_to(broker.addr, "mf-sub");
        sub.subscribe("mf/#", QoS::AtLeastOnce);
        sub.expect_publish("mf/retained", b"kept");
        Fixture {
            broker,
            sub,
            publisher,
        }
    }

    /// A raw connection that has completed CONNECT.
    fn connected(&self, id: &str) -> Raw {
        Raw::mqtt_connect(self.broker.addr, id, true, 0).0
    }

    /// The established subscriber still gets a fresh publish, the retained message is still served, and
    /// a new client works; no worker has stopped.
    fn assert_unaffected(&self, tag: &str) {
        self.publisher
            .publish("mf/fresh", QoS::AtLeastOnce, false, tag);
        self.sub.expect_publish("mf/fresh", tag.as_bytes());
        let (mut late, _) = Raw::mqtt_connect(self.broker.addr, &format!("mf-late-{tag}"), true, 0);
        late.subscribe(1, &[("mf/retained", 1)], &[1]);
        let got = late.read_publish();
        assert_eq!((got.retain, &got.payload[..]), (true, &b"kept"[..]));
        assert_eq!(
            self.broker.handle.clients().len(),
            3,
            "mf-pub, mf-sub and the late client"
        );
        late.send(&[0xE0, 0x00]);
        late.expect_closed();
    }

    /// Sends `bytes` after CONNECT and expects the broker to close that connection.
    fn closes_after_connect(&self, tag: &str, bytes: &[u8]) {
        let mut raw = self.connected(&format!("mf-bad-{tag}"));
        raw.ping();
        raw.send(bytes);
        raw.expect_closed();
        self.assert_unaffected(tag);
    }
}

/// [MQTT-4.8.0-1], §2.2.3: a remaining length of more than 4 bytes is malformed.
#[test]
fn remaining_length_with_five_continuation_bytes_closes() {
    let f = Fixture::new();
    f.closes_after_connect("len", &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    let mut raw = Raw::connect(f.broker.addr);
    raw.send(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x01]);
    raw.expect_closed();
    f.assert_unaffected("len-before-connect");
}

/// §4.8: a packet cut short followed by the client closing its side: the connection ends cleanly.
#[test]
fn truncated_packet_then_close() {
    let f = Fixture::new();
    let mut raw = f.connected("mf-trunc");
    let full = publish_packet("mf/trunc", 1, 1, false, false, b"never complete");
    raw.send(&full[..full.len() - 4]);
    raw.stream.shutdown(Shutdown::Write).unwrap();
    raw.expect_closed();
    wait_until("the truncated client is gone", || {
        client_info(&f.broker.handle, "mf-trunc").is_none()
    });
    // The partial PUBLISH was not delivered: the fresh message is the subscriber's next one.
    f.assert_unaffected("trunc");
}

/// [MQTT-1.5.3-1]: a topic name that is not valid UTF-8 closes the connection.
#[test]
fn invalid_utf8_topic_closes_mqtt_1_5_3_1() {
    let f = Fixture::new();
    f.closes_after_connect("utf8", &[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28]);
    f.closes_after_connect("surrogate", &[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80]);
    f.closes_after_connect("nul", &[0x30, 0x06, 0x00, 0x04, b'm', b'f', b'/', 0x00]);
}

/// [MQTT-3.3.2-2]: the topic name of a PUBLISH must not contain wildcards.
#[test]
fn wildcard_in_publish_topic_closes_mqtt_3_3_2_2() {
    let f = Fixture::new();
    f.closes_after_connect("hash", &publish_packet("mf/#", 0, 0, false, false, b"x"));
    f.closes_after_connect("plus", &publish_packet("mf/+", 1, 1, false, false, b"x"));
}

/// [MQTT-2.2.2-2], [MQTT-3.8.1-1]: invalid fixed-header flags close the connection (SUBSCRIBE with flags
/// 0, PUBREL and UNSUBSCRIBE with flags 0, PINGREQ with flags set).
#[test]
fn reserved_fixed_header_flags_close_mqtt_3_8_1_1() {
    let f = Fixture::new();
    let mut sub = subscribe_packet(1, &[("mf/x", 0)]);
    sub[0] = 0x80;
    f.closes_after_connect("subscribe", &sub);
    f.closes_after_connect("pubrel", &[0x60, 0x02, 0x00, 0x01]);
    let mut unsub = unsubscribe_packet(1, &["mf/x"]);
    unsub[0] = 0xA0;
    f.closes_after_connect("unsubscribe", &unsub);
    f.closes_after_connect("pingreq", &[0xC1, 0x00]);
}

/// [MQTT-3.3.1-4]: a PUBLISH with both QoS bits set (QoS 3) closes the connection.
#[test]
fn publish_qos3_closes_mqtt_3_3_1_4() {
    let f = Fixture::new();
    let mut p = publish_packet("mf/q3", 1, 1, false, false, b"x");
    p[0] = 0x36;
    f.closes_after_connect("qos3", &p);
}

/// A packet larger than `max_packet_size` is refused from its fixed header alone: the broker closes the
/// connection without waiting for the body.
#[test]
fn packet_over_max_packet_size_closed_from_header_alone() {
    let mut s = settings();
    s.limits.max_packet_size = 1024;
    let f = Fixture::with(s);
    // Exactly the limit passes (1 + 2 bytes of fixed header, 2 + 6 of topic, 2 of packet id)...
    let ok_payload = vec![b'x'; 1024 - 3 - 2 - "mf/big".len() - 2];
    let ok = publish_packet("mf/big", 1, 1, false, false, &ok_payload);
    assert_eq!(ok.len(), 1024);
    let mut raw = f.connected("mf-big");
    raw.send(&ok);
    raw.expect(&[0x40, 0x02, 0x00, 0x01]);
    f.sub.expect_publish("mf/big", &ok_payload);
    // ...one byte more does not, judged from its header alone.
    let mut over = Raw::mqtt_connect(f.broker.addr, "mf-over", true, 0).0;
    over.send(
        &publish_packet(
            "mf/big",
            1,
            1,
            false,
            false,
            &[ok_payload.clone(), vec![b'x']].concat(),
        )[..3],
    );
    over.expect_closed();
    // Only the header of a 100 kB PUBLISH: closed at once although the body never comes.
    let mut header = vec![0x30];
    encode_len(100_000, &mut header);
    raw.send(&header);
    let took = raw.time_until_closed(WAIT);
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    f.assert_unaffected("big");
}

/// [MQTT-4.8.0-1]: a server-to-client packet (CONNACK, SUBACK, UNSUBACK, PINGRESP) from a client closes it.
#[test]
fn server_to_client_packet_from_client_closes_mqtt_4_8_0_1() {
    let f = Fixture::new();
    f.closes_after_connect("connack", &[0x20, 0x02, 0x00, 0x00]);
    f.closes_after_connect("suback", &[0x90, 0x03, 0x00, 0x01, 0x00]);
    f.closes_after_connect("unsuback", &[0xB0, 0x02, 0x00, 0x01]);
    f.closes_after_connect("pingresp", &[0xD0, 0x00]);
}

/// §2.2.1: packet types 0 and 15 are reserved; either closes the connection, before or after CONNECT.
#[test]
fn reserved_packet_types_0_and_15_close() {
    let f = Fixture::new();
    f.closes_after_connect("type0", &[0x00, 0x00]);
    f.closes_after_connect("type15", &[0xF0, 0x00]);
    for first in [0x00u8, 0xF0] {
        let mut raw = Raw::connect(f.broker.addr);
        raw.send(&[first, 0x00]);
        raw.expect_closed();
    }
    f.assert_unaffected("reserved-before-connect");
}

/// Garbage (an HTTP request, random-looking bytes) instead of MQTT closes the connection.
#[test]
fn garbage_bytes_close() {
    let f = Fixture::new();
    for (i, junk) in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xFF; 64],
        &[0x10, 0x03, 0x00, 0x01, 0x41],
    ]
    .iter()
    .enumerate()
    {
        let mut raw = Raw::connect(f.broker.addr);
        raw.send_lossy(junk);
        raw.expect_closed();
        f.assert_unaffected(&format!("garbage-{i}"));
    }
    f.closes_after_connect("garbage-after-connect", b"\x47\x45\x54 / HTTP/1.1\r\n\r\n");
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 300 seeded pseudo-random byte strings, raw or after a valid CONNECT, biased towards plausible fixed
/// headers; after each the client closes its side and the broker must end the connection. Then no
/// connection is left over and the broker serves normal clients and its retained message.
#[test]
fn fuzz_random_bytes_never_break_the_broker() {
    let f = Fixture::new();
    let mut rng = XorShift(0x5EED_F00D_5A4D_0001);
    for case in 0..300 {
        let mut bytes = Vec::new();
        if case % 2 == 1 {
            bytes.extend(connect_packet(&format!("fz-{case}"), true, 0));
        }
        let len = rng.below(64) as usize;
        if rng.below(2) == 0 {
            // A real packet type with random flags and a small remaining length, then random body bytes.
            bytes.push(((rng.below(16) as u8) << 4) | rng.below(16) as u8);
            bytes.push(rng.below(40) as u8);
        }
        bytes.extend((0..len).map(|_| rng.next() as u8));
        let mut raw = Raw::connect(f.broker.addr);
        raw.send_lossy(&bytes);
        let _ = raw.stream.shutdown(Shutdown::Write);
        // The broker may answer (CONNACK, SUBACK, PINGRESP...) but must close within the deadline.
        raw.stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut sink = Vec::new();
        match std::io::Read::read_to_end(&mut raw.stream, &mut sink) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("case {case} ({bytes:02x?}): the connection was not closed: {e}"),
        }
    }
    wait_until("every fuzz connection is closed", || {
        f.broker.handle.totals().connections == 2
    });
    assert_eq!(
        f.broker.handle.clients().len(),
        2,
        "{:?}",
        f.broker.handle.clients()
    );
    f.assert_unaffected("fuzz");
}
