//! The will message (MQTT 3.1.1 §3.1.2.5–§3.1.2.7, §3.14.4).

use crate::common::*;
use rumqttc::QoS;

/// A watcher subscribed to `will/#` and a raw client `id` with a will on `will/{id}`.
fn setup(broker: &TestBroker, id: &str, keep_alive: u16) -> (TestClient, Raw, String) {
    let watcher = TestClient::connect_to(broker.addr, &format!("{id}-watcher"));
    watcher.subscribe("will/#", QoS::AtLeastOnce);
    let topic = format!("will/{id}");
    let spec = ConnectSpec {
        keep_alive,
        will: Some((&topic, b"gone", 1, false)),
        ..ConnectSpec::new(id)
    };
    let (raw, _) = spec.connect(broker.addr);
    assert!(client_info(&broker.handle, id).unwrap().will.is_some());
    (watcher, raw, topic)
}

/// [MQTT-3.1.2-8]: the will is published when the network connection closes without DISCONNECT.
#[test]
fn will_published_on_socket_close_without_disconnect_mqtt_3_1_2_8() {
    let broker = TestBroker::start();
    let (watcher, raw, topic) = setup(&broker, "wl-close", 0);
    drop(raw);
    watcher.expect_publish(&topic, b"gone");
}

/// [MQTT-3.1.2-8], §3.1.2.5: the will is published when the keep alive expires.
#[test]
fn will_published_on_keep_alive_timeout_mqtt_3_1_2_8() {
    let broker = TestBroker::start();
    let (watcher, mut raw, topic) = setup(&broker, "wl-ka", 1);
    watcher.expect_publish(&topic, b"gone");
    raw.expect_closed();
}

/// §3.1.2.5, [MQTT-4.8.0-1]: the will is published when the server closes the connection for a protocol
/// error (here a malformed remaining length).
#[test]
fn will_published_on_protocol_violation_mqtt_4_8_0_1() {
    let broker = TestBroker::start();
    let (watcher, mut raw, topic) = setup(&broker, "wl-proto", 0);
    raw.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]);
    raw.expect_closed();
    watcher.expect_publish(&topic, b"gone");
}

/// [MQTT-3.1.2-8]: a server-side disconnect (the admin API's forced disconnect) publishes the will.
#[test]
fn will_published_on_forced_disconnect_mqtt_3_1_2_8() {
    let broker = TestBroker::start();
    let (watcher, mut raw, topic) = setup(&broker, "wl-forced", 0);
    assert!(broker.handle.disconnect("wl-forced", false));
    raw.expect_closed();
    watcher.expect_publish(&topic, b"gone");
    assert!(!broker.handle.disconnect("wl-unknown", false));
}

/// [MQTT-3.1.4-2], [MQTT-3.1.2-8]: the connection closed by a session takeover publishes its will.
#[test]
fn will_published_on_session_takeover_mqtt_3_1_4_2() {
    let broker = TestBroker::start();
    let (watcher, mut raw, topic) = setup(&broker, "wl-takeover", 0);
    let (mut second, _) = Raw::mqtt_connect(broker.addr, "wl-takeover", true, 0);
    raw.expect_closed();
    watcher.expect_publish(&topic, b"gone");
    second.ping();
}

/// [MQTT-3.1.2-10], [MQTT-3.14.4-3]: after DISCONNECT the will is discarded; a marker published afterwards
/// on a topic of the will's partition arrives with nothing before it.
#[test]
fn will_not_published_on_disconnect_mqtt_3_14_4_3() {
    let broker = TestBroker::start();
    let (watcher, mut raw, topic) = setup(&broker, "wl-graceful", 0);
    watcher.subscribe("marker/#", QoS::AtLeastOnce);
    raw.send(&[0xE0, 0x00]);
    raw.expect_closed();
    wait_until("the session is gone", || {
        client_info(&broker.handle, "wl-graceful").is_none()
    });
    let marker = marker_for(&topic, broker.handle.workers());
    let publisher = TestClient::connect_to(broker.addr, "wl-marker");
    publisher.publish(&marker, QoS::AtLeastOnce, false, "marker");
    watcher.expect_publish(&marker, b"marker");
}

/// [MQTT-3.1.2-14], [MQTT-3.1.2-15], [MQTT-3.1.2-17]: the will's QoS and retain flag are honoured: an
/// existing subscriber gets it at min(will QoS, its QoS) with RETAIN 0, a later subscriber gets the
/// retained will with RETAIN 1.
#[test]
fn will_qos_and_retain_honoured_mqtt_3_1_2_17() {
    let broker = TestBroker::start();
    let watcher = TestClient::connect_to(broker.addr, "wq-watcher");
    watcher.subscribe("wq/#", QoS::ExactlyOnce);
    let low = TestClient::connect_to(broker.addr, "wq-low");
    low.subscribe("wq/#", QoS::AtMostOnce);
    let spec = ConnectSpec {
        will: Some(("wq/status", b"offline", 2, true)),
        ..ConnectSpec::new("wq-client")
    };
    let (raw, _) = spec.connect(broker.addr);
    drop(raw);
    let live = watcher.expect_publish("wq/status", b"offline");
    assert_eq!((live.qos, live.retain), (QoS::ExactlyOnce, false));
    let live = low.expect_publish("wq/status", b"offline");
    assert_eq!((live.qos, live.retain), (QoS::AtMostOnce, false));
    let (mut later, _) = Raw::mqtt_connect(broker.addr, "wq-later", true, 0);
    later.subscribe(1, &[("wq/status", 1)], &[1]);
    let kept = later.read_publish();
    assert_eq!(
        (
            kept.qos,
            kept.retain,
            kept.topic.as_str(),
            &kept.payload[..]
        ),
        (1, true, "wq/status", &b"offline"[..])
    );
}
