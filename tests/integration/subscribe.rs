//! SUBSCRIBE and UNSUBSCRIBE: wildcards, overlaps, `$` topics, refusals (MQTT 3.1.1 §3.8–§3.11, §4.7).

use crate::common::*;
use rumqttc::{QoS, SubscribeReasonCode};

/// [MQTT-4.7.1-2], [MQTT-4.7.1-3]: `#` matches the parent and any number of levels; `+` exactly one level.
/// Each topic is followed by a marker in its partition, so a copy that should not come is caught.
#[test]
fn plus_and_hash_wildcards_match_levels_mqtt_4_7_1_2() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let plus = TestClient::connect_to(broker.addr, "wc-plus");
    assert_eq!(
        plus.subscribe("w/+/c", QoS::AtLeastOnce),
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    plus.subscribe("marker/#", QoS::AtLeastOnce);
    let hash = TestClient::connect_to(broker.addr, "wc-hash");
    assert_eq!(
        hash.subscribe("w/a/#", QoS::AtLeastOnce),
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    hash.subscribe("marker/#", QoS::AtLeastOnce);
    let publisher = TestClient::connect_to(broker.addr, "wc-pub");
    let cases = [
        ("w/a/c", true, true),
        ("w/b/c", true, false),
        ("w/a/b/c", false, true),
        ("w/a", false, true),
        ("w/a/c/d", false, true),
        ("w/c", false, false),
        ("w/a/", false, true),
        ("w//c", true, false),
    ];
    for (topic, to_plus, to_hash) in cases {
        let marker = marker_for(topic, n);
        publisher.publish(topic, QoS::AtLeastOnce, false, topic);
        publisher.publish(&marker, QoS::AtLeastOnce, false, "marker");
        for (client, expected) in [(&plus, to_plus), (&hash, to_hash)] {
            if expected {
                client.expect_publish(topic, topic.as_bytes());
            }
            client.expect_publish(&marker, b"marker");
        }
    }
}

/// [MQTT-3.3.5-1]: overlapping subscriptions of one client (`o/#` QoS 1, `o/+` QoS 0, exact `o/x` QoS 2)
/// give one copy per message, at the highest QoS of the matching ones (a marker on the same topic follows).
#[test]
fn overlapping_subscriptions_deliver_one_copy_at_highest_qos_mqtt_3_3_5_1() {
    let broker = TestBroker::start();
    let sub = TestClient::connect_to(broker.addr, "ov-sub");
    sub.subscribe("o/#", QoS::AtLeastOnce);
    sub.subscribe("o/+", QoS::AtMostOnce);
    sub.subscribe("o/x", QoS::ExactlyOnce);
    let publisher = TestClient::connect_to(broker.addr, "ov-pub");
    for (topic, expected) in [
        ("o/x", QoS::ExactlyOnce),
        ("o/y", QoS::AtLeastOnce),
        ("o/y/z", QoS::AtLeastOnce),
    ] {
        publisher.publish(topic, QoS::ExactlyOnce, false, "msg");
        publisher.publish(topic, QoS::AtMostOnce, false, "marker");
        assert_eq!(sub.expect_publish(topic, b"msg").qos, expected, "{topic}");
        assert_eq!(
            sub.expect_publish(topic, b"marker").qos,
            QoS::AtMostOnce,
            "{topic}: one copy only"
        );
    }
}

/// [MQTT-4.7.2-1]: filters starting with a wildcard (`#`, `+/...`) do not match topics starting with `$`;
/// `$x/#` does.
#[test]
fn wildcards_do_not_match_dollar_topics_mqtt_4_7_2_1() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let wild = TestClient::connect_to(broker.addr, "dl-wild");
    wild.subscribe("#", QoS::AtLeastOnce);
    wild.subscribe("+/y", QoS::AtLeastOnce);
    let dollar = TestClient::connect_to(broker.addr, "dl-dollar");
    dollar.subscribe("$x/#", QoS::AtLeastOnce);
    let (mut publisher, _) = Raw::mqtt_connect(broker.addr, "dl-pub", true, 0);
    publisher.send(&publish_packet("$x/y", 1, 1, false, false, b"dollar"));
    publisher.expect(&[0x40, 0x02, 0x00, 0x01]);
    let marker = marker_for("$x/y", n);
    publisher.send(&publish_packet(&marker, 1, 2, false, false, b"marker"));
    publisher.expect(&[0x40, 0x02, 0x00, 0x02]);
    dollar.expect_publish("$x/y", b"dollar");
    wild.expect_publish(&marker, b"marker");
    // `+/y` with a non-`$` topic does match, once (also matched by `#`).
    publisher.send(&publish_packet("m/y", 1, 3, false, false, b"plain"));
    publisher.expect(&[0x40, 0x02, 0x00, 0x03]);
    publisher.send(&publish_packet("m/y", 0, 0, false, false, b"after"));
    wild.expect_publish("m/y", b"plain");
    wild.expect_publish("m/y", b"after");
}

/// §4.7.1, [MQTT-4.7.1-2]: invalid filters (`a/#/b`, `a+`, `#a`, `a/b#`) get 0x80 in SUBACK while the
/// valid filters of the same SUBSCRIBE are granted [MQTT-3.9.3-1] and work.
#[test]
fn invalid_filter_gets_0x80_others_granted_mqtt_3_9_3_1() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "inv-sub", true, 0);
    sub.subscribe(
        7,
        &[
            ("a/#/b", 1),
            ("ok/t", 1),
            ("a+", 0),
            ("fine/#", 2),
            ("#a", 0),
            ("a/b#", 1),
        ],
        &[0x80, 0x01, 0x80, 0x02, 0x80, 0x80],
    );
    let info = client_info(&broker.handle, "inv-sub").unwrap();
    let filters: Vec<&str> = info.subscriptions.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(filters, ["fine/#", "ok/t"]);
    let publisher = TestClient::connect_to(broker.addr, "inv-pub");
    publisher.publish("ok/t", QoS::AtLeastOnce, false, "granted");
    let got = sub.read_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("ok/t", &b"granted"[..])
    );
    assert_eq!(broker.handle.totals().subscriptions_refused, 4);
}

/// [MQTT-3.10.4-1], [MQTT-3.10.4-4], [MQTT-3.11.2-1]: UNSUBSCRIBE (exact and wildcard filters) gets
/// UNSUBACK with its packet id and stops delivery; a marker in each topic's partition proves it.
#[test]
fn unsubscribe_stops_delivery_mqtt_3_10_4_1() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "un-sub", true, 0);
    sub.subscribe(
        1,
        &[("un/a", 1), ("un/w/#", 1), ("marker/#", 1)],
        &[1, 1, 1],
    );
    sub.send(&unsubscribe_packet(0x0102, &["un/a", "un/w/#", "un/never"]));
    sub.expect(&[0xB0, 0x02, 0x01, 0x02]);
    let publisher = TestClient::connect_to(broker.addr, "un-pub");
    // Topics in every partition, so every replica of the wildcard subscription must be gone.
    let mut topics = vec!["un/a".to_string()];
    topics.extend((0..n).map(|p| topic_in_partition("un/w", p, n)));
    for t in &topics {
        publisher.publish(t, QoS::AtLeastOnce, false, "gone");
        let marker = marker_for(t, n);
        publisher.publish(&marker, QoS::AtLeastOnce, false, "marker");
        let got = sub.read_publish();
        assert_eq!(
            (got.topic.as_str(), &got.payload[..]),
            (marker.as_str(), &b"marker"[..]),
            "after {t}"
        );
        sub.send(&[
            0x40,
            0x02,
            (got.pid.unwrap() >> 8) as u8,
            got.pid.unwrap() as u8,
        ]);
    }
    assert_eq!(
        client_info(&broker.handle, "un-sub").unwrap().subscriptions,
        vec![("marker/#".to_string(), protocol_qos(1))]
    );
}

fn protocol_qos(q: u8) -> shardmq::protocol::QoS {
    shardmq::protocol::QoS::from_u8(q).unwrap()
}
