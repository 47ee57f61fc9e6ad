//! Retained messages (MQTT 3.1.1 §3.3.1.3).

use std::collections::BTreeSet;

use crate::common::*;
use rumqttc::QoS;

/// [MQTT-3.3.1-5], [MQTT-3.3.1-6], [MQTT-3.3.1-8]: a retained message is stored and sent to a new
/// subscriber with RETAIN 1, after the SUBACK.
#[test]
fn retained_delivered_on_subscribe_with_retain_1_mqtt_3_3_1_8() {
    let broker = TestBroker::start();
    let publisher = TestClient::connect_to(broker.addr, "rt-pub");
    publisher.publish_acked("rt/a", QoS::AtLeastOnce, true, "kept");
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "rt-sub", true, 0);
    sub.subscribe(3, &[("rt/a", 1)], &[1]);
    let got = sub.read_publish();
    assert_eq!(
        (got.retain, got.qos, got.topic.as_str(), &got.payload[..]),
        (true, 1, "rt/a", &b"kept"[..])
    );
}

/// [MQTT-3.3.1-9]: a retained PUBLISH forwarded to a subscription that already exists goes out with
/// RETAIN 0.
#[test]
fn retained_forwarded_to_existing_subscriber_with_retain_0_mqtt_3_3_1_9() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "rf-sub", true, 0);
    sub.subscribe(1, &[("rf/#", 0)], &[0]);
    let publisher = TestClient::connect_to(broker.addr, "rf-pub");
    publisher.publish("rf/a", QoS::AtLeastOnce, true, "live");
    sub.expect(&publish_packet("rf/a", 0, 0, false, false, b"live"));
}

/// [MQTT-3.3.1-10], [MQTT-3.3.1-11]: a zero-byte retained PUBLISH clears the topic's retained message.
/// A second retained topic in the same partition, matched by the same filter, is the positive marker.
#[test]
fn zero_byte_retained_clears_it_mqtt_3_3_1_10() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let cleared = "rc/cleared".to_string();
    let marker = (0..)
        .map(|i| format!("rc/m{i}"))
        .find(|t| {
            shardmq::message::partition_of(t, n) == shardmq::message::partition_of(&cleared, n)
        })
        .unwrap();
    let publisher = TestClient::connect_to(broker.addr, "rc-pub");
    publisher.publish_acked(&cleared, QoS::AtLeastOnce, true, "old");
    publisher.publish_acked(&marker, QoS::AtLeastOnce, true, "marker");
    // Before clearing, a subscriber gets both: the check below can fail.
    let before = TestClient::connect_to(broker.addr, "rc-before");
    before.subscribe("rc/+", QoS::AtLeastOnce);
    let topics: BTreeSet<String> = (0..2).map(|_| before.next_publish().topic).collect();
    assert_eq!(topics, BTreeSet::from([cleared.clone(), marker.clone()]));

    publisher.publish_acked(&cleared, QoS::AtLeastOnce, true, "");
    let sub = TestClient::connect_to(broker.addr, "rc-sub");
    sub.subscribe("rc/+", QoS::AtLeastOnce);
    let got = sub.expect_publish(&marker, b"marker");
    assert!(got.retain);
    // Both retained messages of that partition are sent in the same partition step, so by the time the
    // marker is here a still-retained `rc/cleared` would be too; the short quiet period covers either order.
    sub.assert_no_publish(std::time::Duration::from_millis(300));
    assert!(broker
        .handle
        .history(&cleared)
        .first()
        .is_some_and(|h| h.msg.payload.is_empty()));
}

/// [MQTT-3.3.1-6] with sharding: a wildcard subscription receives the retained messages of every
/// partition (topics spread over all workers), each once with RETAIN 1.
#[test]
fn retained_matched_by_wildcard_across_partitions_mqtt_3_3_1_6() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let topics: Vec<String> = (0..40).map(|i| format!("rw/{i}/leaf")).collect();
    let partitions: BTreeSet<usize> = topics
        .iter()
        .map(|t| shardmq::message::partition_of(t, n))
        .collect();
    assert_eq!(partitions.len(), n, "the topics cover every partition");
    let publisher = TestClient::connect_to(broker.addr, "rw-pub");
    for t in &topics {
        publisher.publish_acked(t, QoS::AtLeastOnce, true, t.clone());
    }
    let sub = TestClient::connect_to(broker.addr, "rw-sub");
    sub.subscribe("rw/+/leaf", QoS::AtLeastOnce);
    let mut got = BTreeSet::new();
    for _ in 0..topics.len() {
        let p = sub.next_publish();
        assert!(p.retain, "{p:?}");
        assert_eq!(p.payload, p.topic.as_bytes());
        assert!(got.insert(p.topic.clone()), "duplicate {}", p.topic);
    }
    assert_eq!(got, topics.iter().cloned().collect::<BTreeSet<_>>());
}

/// [MQTT-3.8.4-6]: a retained message is sent at min(its QoS, the granted QoS).
#[test]
fn retained_qos_downgraded_to_subscription_qos_mqtt_3_8_4_6() {
    let broker = TestBroker::start();
    let publisher = TestClient::connect_to(broker.addr, "rq-pub");
    publisher.publish_acked("rq/t", QoS::ExactlyOnce, true, "q2");
    for (sub_qos, expected) in [(0u8, 0u8), (1, 1), (2, 2)] {
        let (mut sub, _) = Raw::mqtt_connect(broker.addr, &format!("rq-sub-{sub_qos}"), true, 0);
        sub.subscribe(1, &[("rq/t", sub_qos)], &[sub_qos]);
        let got = sub.read_publish();
        assert_eq!(
            (got.qos, got.retain, &got.payload[..]),
            (expected, true, &b"q2"[..]),
            "subscribed at {sub_qos}"
        );
    }
}
