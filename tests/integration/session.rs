//! Sessions: clean session 0 and 1, offline queues, resending in-flight messages, takeover
//! (MQTT 3.1.1 §3.1.2.4, §4.1, §4.4, §3.1.4).

use crate::common::*;
use rumqttc::QoS;

fn persistent(broker: &TestBroker, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(broker.addr, id);
    o.set_clean_session(false);
    o
}

fn wait_offline(broker: &TestBroker, id: &str) {
    wait_until(&format!("{id} is offline"), || {
        client_info(&broker.handle, id).is_some_and(|c| !c.connected)
    });
}

/// [MQTT-3.1.2-4], [MQTT-3.1.2-5]: with clean session 0 the subscriptions survive a disconnect.
#[test]
fn clean_session_0_keeps_subscriptions_mqtt_3_1_2_4() {
    let broker = TestBroker::start();
    let (sub, present) = TestClient::connect_session(persistent(&broker, "ks-sub"));
    assert!(!present);
    sub.subscribe("ks/t", QoS::AtLeastOnce);
    sub.disconnect();
    wait_offline(&broker, "ks-sub");
    let (sub, present) = TestClient::connect_session(persistent(&broker, "ks-sub"));
    assert!(present);
    let publisher = TestClient::connect_to(broker.addr, "ks-pub");
    publisher.publish("ks/t", QoS::AtLeastOnce, false, "still subscribed");
    sub.expect_publish("ks/t", b"still subscribed");
}

/// [MQTT-3.1.2-5]: QoS 1 and 2 messages published while a clean-session-0 client is offline are stored and
/// delivered on reconnect, in order; QoS 0 ones are not (the next message after them is a live marker).
#[test]
fn offline_qos1_qos2_queued_qos0_not_mqtt_3_1_2_5() {
    let broker = TestBroker::start();
    let (sub, _) = TestClient::connect_session(persistent(&broker, "oq-sub"));
    sub.subscribe("oq/t", QoS::ExactlyOnce);
    sub.disconnect();
    wait_offline(&broker, "oq-sub");
    let publisher = TestClient::connect_to(broker.addr, "oq-pub");
    publisher.publish("oq/t", QoS::AtLeastOnce, false, "one");
    publisher.publish("oq/t", QoS::AtMostOnce, false, "zero");
    publisher.publish("oq/t", QoS::ExactlyOnce, false, "two");
    publisher.publish_acked("oq/t", QoS::AtLeastOnce, false, "three");
    wait_until("three messages queued", || {
        client_info(&broker.handle, "oq-sub").is_some_and(|c| c.queued == 3)
    });
    let (sub, present) = TestClient::connect_session(persistent(&broker, "oq-sub"));
    assert!(present);
    assert_eq!(sub.expect_publish("oq/t", b"one").qos, QoS::AtLeastOnce);
    assert_eq!(sub.expect_publish("oq/t", b"two").qos, QoS::ExactlyOnce);
    assert_eq!(sub.expect_publish("oq/t", b"three").qos, QoS::AtLeastOnce);
    publisher.publish("oq/t", QoS::AtMostOnce, false, "marker");
    sub.expect_publish("oq/t", b"marker");
}

/// [MQTT-4.4.0-1], [MQTT-3.3.1-1]: an unacknowledged QoS 1 PUBLISH is resent on reconnect (clean
/// session 0) with the same packet id and DUP 1.
#[test]
fn unacked_qos1_resent_with_dup_after_reconnect_mqtt_4_4_0_1() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "rs-sub", false, 0);
    sub.subscribe(1, &[("rs/t", 1)], &[1]);
    let publisher = TestClient::connect_to(broker.addr, "rs-pub");
    publisher.publish("rs/t", QoS::AtLeastOnce, false, "unacked");
    let first = sub.read_publish();
    assert!(!first.dup);
    drop(sub);
    wait_offline(&broker, "rs-sub");
    assert_eq!(client_info(&broker.handle, "rs-sub").unwrap().inflight, 1);
    let (mut sub, present) = Raw::mqtt_connect(broker.addr, "rs-sub", false, 0);
    assert!(present);
    let again = sub.read_publish();
    assert_eq!(
        again,
        RawPublish {
            dup: true,
            ..first.clone()
        }
    );
    let [hi, lo] = again.pid.unwrap().to_be_bytes();
    sub.send(&[0x40, 0x02, hi, lo]);
    wait_until("the resent message is acknowledged", || {
        client_info(&broker.handle, "rs-sub").is_some_and(|c| c.inflight == 0)
    });
}

/// [MQTT-4.4.0-1], [MQTT-4.3.3-1]: a QoS 2 message whose PUBREC came but whose PUBCOMP did not gets its
/// PUBREL again on reconnect.
#[test]
fn qos2_pubrel_resent_after_reconnect_mqtt_4_4_0_1() {
    let broker = TestBroker::start();
    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "pr-sub", false, 0);
    sub.subscribe(1, &[("pr/t", 2)], &[2]);
    let publisher = TestClient::connect_to(broker.addr, "pr-pub");
    publisher.publish("pr/t", QoS::ExactlyOnce, false, "two");
    let got = sub.read_publish();
    assert_eq!((got.qos, &got.payload[..]), (2, &b"two"[..]));
    let [hi, lo] = got.pid.unwrap().to_be_bytes();
    sub.send(&[0x50, 0x02, hi, lo]);
    sub.expect(&[0x62, 0x02, hi, lo]);
    drop(sub);
    wait_offline(&broker, "pr-sub");
    let (mut sub, present) = Raw::mqtt_connect(broker.addr, "pr-sub", false, 0);
    assert!(present);
    sub.expect(&[0x62, 0x02, hi, lo]);
    sub.send(&[0x70, 0x02, hi, lo]);
    wait_until("the handshake completes", || {
        client_info(&broker.handle, "pr-sub").is_some_and(|c| c.inflight == 0)
    });
    // Not delivered a second time: the next packet is the PINGRESP.
    sub.ping();
}

/// [MQTT-3.1.2-6]: with clean session 1 nothing is kept: no session after disconnect, no subscriptions
/// and no offline messages on reconnect.
#[test]
fn clean_session_1_keeps_nothing_mqtt_3_1_2_6() {
    let broker = TestBroker::start();
    let sub = TestClient::connect_to(broker.addr, "cs-sub");
    sub.subscribe("cs/t", QoS::AtLeastOnce);
    sub.disconnect();
    wait_until("the clean session is gone", || {
        client_info(&broker.handle, "cs-sub").is_none()
    });
    let publisher = TestClient::connect_to(broker.addr, "cs-pub");
    publisher.publish_acked("cs/t", QoS::AtLeastOnce, false, "while offline");
    let (sub, present) = TestClient::connect_session(options(broker.addr, "cs-sub"));
    assert!(!present);
    assert!(client_info(&broker.handle, "cs-sub")
        .unwrap()
        .subscriptions
        .is_empty());
    // Subscribing waits for SUBACK and fails on any PUBLISH before it (a kept offline message).
    let marker = marker_for("cs/t", broker.handle.workers());
    sub.subscribe(&marker, QoS::AtLeastOnce);
    publisher.publish("cs/t", QoS::AtLeastOnce, false, "not subscribed any more");
    publisher.publish(&marker, QoS::AtLeastOnce, false, "marker");
    sub.expect_publish(&marker, b"marker");
}

/// [MQTT-3.1.4-2]: a CONNECT with the client id of a connected client closes the older connection. The
/// listener deals sockets round-robin, so consecutive connections are accepted by different workers.
#[test]
fn session_takeover_closes_first_connection_mqtt_3_1_4_2() {
    let broker = TestBroker::start();
    let mut live = Vec::new();
    for i in 0..(2 * broker.handle.workers()) {
        let id = format!("tk-{i}");
        let (mut first, _) = Raw::mqtt_connect(broker.addr, &id, i % 2 == 0, 0);
        let (mut second, _) = Raw::mqtt_connect(broker.addr, &id, true, 0);
        first.expect_closed();
        second.ping();
        let info = client_info(&broker.handle, &id).unwrap();
        assert!(info.connected && info.clean_session, "{info:?}");
        live.push(second);
    }
    assert_eq!(
        broker.handle.totals().connections,
        2 * broker.handle.workers() as i64
    );
}

/// §4.1 flow control: with max_queued_messages 5, an offline session keeps the first 5 of 8 QoS 1
/// messages and counts the 3 dropped.
#[test]
fn offline_queue_limit_drops_excess_and_counts_them() {
    let mut settings = settings();
    settings.limits.max_queued_messages = 5;
    let broker = TestBroker::with(settings);
    let (sub, _) = TestClient::connect_session(persistent(&broker, "ql-sub"));
    sub.subscribe("ql/t", QoS::AtLeastOnce);
    sub.disconnect();
    wait_offline(&broker, "ql-sub");
    let dropped_before = broker.handle.totals().dropped;
    let publisher = TestClient::connect_to(broker.addr, "ql-pub");
    for i in 0..8 {
        publisher.publish_acked("ql/t", QoS::AtLeastOnce, false, format!("m{i}"));
    }
    wait_until("3 messages dropped", || {
        broker.handle.totals().dropped == dropped_before + 3
    });
    assert_eq!(client_info(&broker.handle, "ql-sub").unwrap().queued, 5);
    assert_eq!(client_info(&broker.handle, "ql-sub").unwrap().dropped, 3);
    let (sub, present) = TestClient::connect_session(persistent(&broker, "ql-sub"));
    assert!(present);
    for i in 0..5 {
        sub.expect_publish("ql/t", format!("m{i}").as_bytes());
    }
    publisher.publish("ql/t", QoS::AtLeastOnce, false, "marker");
    sub.expect_publish("ql/t", b"marker");
    assert_eq!(broker.handle.totals().dropped, dropped_before + 3);
}
