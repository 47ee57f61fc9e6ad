//! The shortest path through the broker: connect, subscribe, publish, receive.

use crate::common::*;
use rumqttc::QoS;

#[test]
fn publish_reaches_subscriber() {
    let broker = TestBroker::start();
    let sub = TestClient::connect_to(broker.addr, "smoke-sub");
    sub.subscribe("smoke/#", QoS::AtLeastOnce);
    let publisher = TestClient::connect_to(broker.addr, "smoke-pub");
    publisher.publish("smoke/a", QoS::AtLeastOnce, false, "hello");
    let p = sub.next_publish();
    assert_eq!(p.topic, "smoke/a");
    assert_eq!(&p.payload[..], b"hello");
    assert_eq!(p.qos, QoS::AtLeastOnce);
}
