//! PUBLISH flows at QoS 0, 1 and 2 in both directions (MQTT 3.1.1 §3.3–§3.7, §4.3, §4.6).

use std::collections::BTreeSet;

use crate::common::*;
use rumqttc::QoS;

fn inflight_drains(broker: &TestBroker, id: &str) {
    wait_until(&format!("{id} has nothing in flight"), || {
        client_info(&broker.handle, id).is_some_and(|c| c.inflight == 0)
    });
}

/// [MQTT-4.3.1-1]: QoS 0 in and out, no acknowledgement either way; exact bytes.
#[test]
fn qos0_publish_in_and_out_exact_bytes_mqtt_4_3_1_1() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "q0-sub", true, 0);
    sub.subscribe(1, &[("q0/t", 0)], &[0x00]);
    let (mut publisher, _) = Raw::mqtt_connect(broker.addr, "q0-pub", true, 0);
    publisher.send(&publish_packet("q0/t", 0, 0, false, false, b"zero"));
    sub.expect(&publish_packet("q0/t", 0, 0, false, false, b"zero"));
    // No acknowledgement came back to the publisher: the next thing it reads is its PINGRESP.
    publisher.ping();
}

/// [MQTT-4.3.2-1], [MQTT-4.3.2-2], [MQTT-3.4.0-1]: QoS 1 in (PUBACK with the publisher's packet id) and
/// out (PUBLISH with a broker packet id, acknowledged by the subscriber).
#[test]
fn qos1_publish_puback_both_directions_mqtt_4_3_2_1() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "q1-sub", true, 0);
    sub.subscribe(1, &[("q1/t", 1)], &[0x01]);
    let (mut publisher, _) = Raw::mqtt_connect(broker.addr, "q1-pub", true, 0);
    publisher.send(&publish_packet("q1/t", 1, 0x1234, false, false, b"one"));
    publisher.expect(&[0x40, 0x02, 0x12, 0x34]);
    let got = sub.read_publish();
    assert_eq!(
        (
            got.qos,
            got.dup,
            got.retain,
            got.topic.as_str(),
            &got.payload[..]
        ),
        (1, false, false, "q1/t", &b"one"[..])
    );
    let pid = got.pid.expect("QoS 1 has a packet id");
    assert_ne!(pid, 0, "[MQTT-2.3.1-1] packet ids are non-zero");
    assert_eq!(
        client_info(&broker.handle, "q1-sub").unwrap().inflight,
        1,
        "awaiting the PUBACK"
    );
    sub.send(&[0x40, 0x02, (pid >> 8) as u8, pid as u8]);
    inflight_drains(&broker, "q1-sub");
}

/// [MQTT-4.3.3-1], [MQTT-4.3.3-2], [MQTT-3.6.1-1]: the QoS 2 handshake both ways, exact bytes:
/// PUBLISH → PUBREC, PUBREL (flags 0b0010) → PUBCOMP.
#[test]
fn qos2_full_handshake_both_directions_exact_bytes_mqtt_4_3_3_1() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "q2-sub", true, 0);
    sub.subscribe(1, &[("q2/t", 2)], &[0x02]);
    let (mut publisher, _) = Raw::mqtt_connect(broker.addr, "q2-pub", true, 0);
    publisher.send(&publish_packet("q2/t", 2, 9, false, false, b"two"));
    publisher.expect(&[0x50, 0x02, 0x00, 0x09]);
    publisher.send(&[0x62, 0x02, 0x00, 0x09]);
    publisher.expect(&[0x70, 0x02, 0x00, 0x09]);

    let got = sub.read_publish();
    assert_eq!(
        (got.qos, got.dup, got.topic.as_str(), &got.payload[..]),
        (2, false, "q2/t", &b"two"[..])
    );
    let pid = got.pid.unwrap();
    let [hi, lo] = pid.to_be_bytes();
    sub.send(&[0x50, 0x02, hi, lo]);
    sub.expect(&[0x62, 0x02, hi, lo]);
    sub.send(&[0x70, 0x02, hi, lo]);
    inflight_drains(&broker, "q2-sub");
}

/// [MQTT-4.3.3-2], §4.3.3 method A: a QoS 2 PUBLISH resent with DUP before PUBREL is acknowledged again
/// but delivered once; a marker published afterwards is the subscriber's very next message.
#[test]
fn qos2_resend_with_dup_delivered_exactly_once_mqtt_4_3_3_2() {
    let broker = TestBroker::start();
    let sub = TestClient::connect_to(broker.addr, "eo-sub");
    sub.subscribe("eo/t", QoS::ExactlyOnce);
    let (mut publisher, _) = Raw::mqtt_connect(broker.addr, "eo-pub", true, 0);
    publisher.send(&publish_packet("eo/t", 2, 5, false, false, b"once"));
    publisher.expect(&[0x50, 0x02, 0x00, 0x05]);
    publisher.send(&publish_packet("eo/t", 2, 5, true, false, b"once"));
    publisher.expect(&[0x50, 0x02, 0x00, 0x05]);
    publisher.send(&[0x62, 0x02, 0x00, 0x05]);
    publisher.expect(&[0x70, 0x02, 0x00, 0x05]);
    publisher.send(&publish_packet("eo/t", 1, 6, false, false, b"marker"));
    publisher.expect(&[0x40, 0x02, 0x00, 0x06]);

    let first = sub.expect_publish("eo/t", b"once");
    assert_eq!(first.qos, QoS::ExactlyOnce);
    sub.expect_publish("eo/t", b"marker");
}

/// [MQTT-3.8.4-6], [MQTT-3.3.5-1]: a message goes out at min(publish QoS, granted QoS), every pair.
#[test]
fn effective_qos_is_min_of_publish_and_subscription_mqtt_3_8_4_6() {
    let broker = TestBroker::start();
    let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    let subs: Vec<TestClient> = levels
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let c = TestClient::connect_to(broker.addr, &format!("eff-sub-{i}"));
            c.subscribe("eff/t", *q);
            c
        })
        .collect();
    let publisher = TestClient::connect_to(broker.addr, "eff-pub");
    for (i, q) in levels.iter().enumerate() {
        publisher.publish("eff/t", *q, false, format!("p{i}"));
    }
    for (s, sq) in subs.iter().zip(levels) {
        for (i, pq) in levels.iter().enumerate() {
            let p = s.expect_publish("eff/t", format!("p{i}").as_bytes());
            let min = if *pq <= sq { *pq } else { sq };
            assert_eq!(p.qos, min, "published at {pq:?}, subscribed at {sq:?}");
        }
    }
}

/// [MQTT-4.6.0-5], [MQTT-4.6.0-6]: messages of one publisher on one topic arrive in order (500 at QoS 1,
/// publisher and subscriber on different workers when there are several).
#[test]
fn qos1_order_per_publisher_and_topic_500_messages_mqtt_4_6_0_6() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let sub = TestClient::connect_to(broker.addr, &id_on_worker("ord-sub", 0, n));
    sub.subscribe("ord/t", QoS::AtLeastOnce);
    let publisher = TestClient::connect_to(broker.addr, &id_on_worker("ord-pub", n - 1, n));
    for i in 0..500 {
        publisher.publish("ord/t", QoS::AtLeastOnce, false, i.to_string());
    }
    for i in 0..500 {
        let p = sub.next_publish();
        assert_eq!(
            std::str::from_utf8(&p.payload).unwrap(),
            i.to_string(),
            "message {i} out of order"
        );
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
}

/// §4.6 with the broker's sharding: every publisher worker × topic partition × subscriber worker
/// combination delivers (one publisher and one subscriber homed on each worker, one topic per partition).
#[test]
fn delivery_across_every_worker_combination() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let subs: Vec<TestClient> = (0..n)
        .map(|w| {
            let c = TestClient::connect_to(broker.addr, &id_on_worker("xw-sub", w, n));
            c.subscribe("xw/#", QoS::AtLeastOnce);
            c
        })
        .collect();
    let topics: Vec<String> = (0..n).map(|p| topic_in_partition("xw", p, n)).collect();
    let mut expected = BTreeSet::new();
    for w in 0..n {
        let publisher = TestClient::connect_to(broker.addr, &id_on_worker("xw-pub", w, n));
        for t in &topics {
            let payload = format!("from-{w}-to-{t}");
            publisher.publish_acked(t, QoS::AtLeastOnce, false, payload.clone());
            expected.insert((t.clone(), payload));
        }
    }
    for (w, s) in subs.iter().enumerate() {
        let got: BTreeSet<(String, String)> = (0..expected.len())
            .map(|_| {
                let p = s.next_publish();
                (
                    p.topic.clone(),
                    String::from_utf8(p.payload.to_vec()).unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected, "subscriber on worker {w}");
    }
}
