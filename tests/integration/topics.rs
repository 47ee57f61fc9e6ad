//! The topic list: with enforcement on, SUBSCRIBE filters that overlap no entry get 0x80 and PUBLISHes
//! to topics no entry matches are dropped (both counted); entries created or deleted through the
//! internal API apply at once and survive a restart through the state file.

use std::time::Duration;

use crate::common::*;
use rumqttc::{QoS, SubscribeFilter, SubscribeReasonCode};
use shardmq::topic::TopicList;
use shardmq::Settings;

const LIST: [&str; 3] = ["sensors/#", "devices/+/status", "chat/general"];
const QUIET: Duration = Duration::from_millis(200);

fn list(entries: &[&str]) -> TopicList {
    TopicList::new(entries.iter().map(|s| s.to_string())).unwrap()
}

fn enforced() -> Settings {
    Settings {
        enforce_topics: true,
        topics: list(&LIST),
        ..settings()
    }
}

fn granted(q: QoS) -> Vec<SubscribeReasonCode> {
    vec![SubscribeReasonCode::Success(q)]
}

fn refused() -> Vec<SubscribeReasonCode> {
    vec![SubscribeReasonCode::Failure]
}

/// Subscribes to several filters in one SUBSCRIBE and returns the SUBACK codes.
fn subscribe_many(c: &TestClient, filters: &[&str]) -> Vec<SubscribeReasonCode> {
    let filters = filters
        .iter()
        .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
    c.client.subscribe_many(filters).unwrap();
    loop {
        match c.next_packet() {
            rumqttc::Packet::SubAck(ack) => return ack.return_codes,
            rumqttc::Packet::Publish(p) => panic!("unexpected PUBLISH before SUBACK: {p:?}"),
            _ => continue,
        }
    }
}

#[test]
fn filters_overlapping_an_entry_are_granted() {
    let broker = TestBroker::with(enforced());
    let c = TestClient::connect_to(broker.addr, "tl-grant");
    for f in [
        "sensors/kitchen/temp",
        "sensors/#",
        "sensors",
        "devices/d1/status",
        "devices/+/status",
        "+/d1/status",
        "chat/general",
        "chat/+",
        "#",
        "+/+",
    ] {
        assert_eq!(
            c.subscribe(f, QoS::AtLeastOnce),
            granted(QoS::AtLeastOnce),
            "filter {f}"
        );
    }
    // ("+" would be granted: the topic "sensors" matches both it and "sensors/#"; so would any filter starting with "+".)
    for f in [
        "devices/d1",
        "devices/d1/status/x",
        "chat/random",
        "weather/#",
        "chat",
        "weather/+",
    ] {
        assert_eq!(c.subscribe(f, QoS::AtMostOnce), refused(), "filter {f}");
    }
    wait_until("refusals are counted", || {
        broker.handle.totals().subscriptions_refused == 6
    });
    let subs: Vec<String> = broker.handle.clients()[0]
        .subscriptions
        .iter()
        .map(|(f, _)| f.clone())
        .collect();
    assert_eq!(
        subs.len(),
        10,
        "only granted filters are part of the session: {subs:?}"
    );
    assert!(!subs.iter().any(|f| f == "weather/#"));
}

#[test]
fn a_refused_filter_does_not_affect_the_others_in_the_same_subscribe() {
    let broker = TestBroker::with(enforced());
    let c = TestClient::connect_to(broker.addr, "tl-mixed");
    let codes = subscribe_many(&c, &["sensors/a", "weather/#", "chat/general"]);
    assert_eq!(
        codes,
        vec![
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        ]
    );
    wait_until("the refusal is counted", || {
        broker.handle.totals().subscriptions_refused >= 1
    });
    assert_eq!(broker.handle.totals().subscriptions_refused, 1);
    // The granted ones work.
    let p = TestClient::connect_to(broker.addr, "tl-mixed-pub");
    p.publish("sensors/a", QoS::AtLeastOnce, false, "1");
    p.publish("chat/general", QoS::AtLeastOnce, false, "2");
    // Two topics, possibly two partitions: MQTT orders messages per topic, not across topics.
    let mut got = [c.next_publish(), c.next_publish()];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(
        (got[0].topic.as_str(), &got[0].payload[..]),
        ("chat/general", &b"2"[..])
    );
    assert_eq!(
        (got[1].topic.as_str(), &got[1].payload[..]),
        ("sensors/a", &b"1"[..])
    );
}

#[test]
fn publish_to_an_unlisted_topic_is_dropped_and_counted() {
    let broker = TestBroker::with(enforced());
    let sub = TestClient::connect_to(broker.addr, "tl-sub");
    // '#' overlaps the list, so it is granted and would receive any topic.
    assert_eq!(
        sub.subscribe("#", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    let p = TestClient::connect_to(broker.addr, "tl-pub");
    p.publish("weather/today", QoS::AtLeastOnce, false, "dropped");
    p.publish("chat/general/x", QoS::AtMostOnce, false, "dropped too");
    p.publish("devices/d1/status", QoS::AtLeastOnce, false, "delivered");
    // Published after the unlisted ones on the same connection: once it arrives, they have been handled.
    let got = sub.next_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("devices/d1/status", &b"delivered"[..])
    );
    sub.assert_no_publish(QUIET);
    let t = broker.handle.totals();
    assert_eq!(t.publishes_refused, 2);
    assert_eq!(t.messages_in, 1);
    assert!(
        broker.handle.history("weather/today").is_empty(),
        "a dropped publish leaves no history"
    );
    // The admin API is held to the list too.
    let err = broker
        .handle
        .publish(
            "weather/today",
            b"x".to_vec(),
            shardmq::protocol::QoS::AtMostOnce,
            false,
        )
        .unwrap_err();
    assert!(err.contains("weather/today"), "{err}");
}

#[test]
fn a_will_to_an_unlisted_topic_is_dropped() {
    let broker = TestBroker::with(enforced());
    let sub = TestClient::connect_to(broker.addr, "tl-will-sub");
    sub.subscribe("#", QoS::AtLeastOnce);
    let (_bad, code, _) = RawConnect {
        will: Some(("weather/will", b"w1", 1, false)),
        ..RawConnect::new("tl-will-bad")
    }
    .connect(broker.addr);
    assert_eq!(code, 0);
    let (_good, code, _) = RawConnect {
        will: Some(("sensors/will", b"w2", 1, false)),
        ..RawConnect::new("tl-will-good")
    }
    .connect(broker.addr);
    assert_eq!(code, 0);
    assert!(broker.handle.disconnect("tl-will-bad", false));
    assert!(broker.handle.disconnect("tl-will-good", false));
    let got = sub.next_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("sensors/will", &b"w2"[..])
    );
    sub.assert_no_publish(QUIET);
    assert_eq!(broker.handle.totals().publishes_refused, 1);
}

#[test]
fn created_and_deleted_topics_apply_at_once() {
    let broker = TestBroker::with(enforced());
    let h = &broker.handle;
    let c = TestClient::connect_to(broker.addr, "tl-live");
    let p = TestClient::connect_to(broker.addr, "tl-live-pub");
    assert_eq!(c.subscribe("weather/today", QoS::AtLeastOnce), refused());

    assert_eq!(h.create_topic("weather/+"), Ok(true));
    assert_eq!(h.create_topic("weather/+"), Ok(false), "already listed");
    assert_eq!(
        c.subscribe("weather/today", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    p.publish("weather/today", QoS::AtLeastOnce, false, "sunny");
    assert_eq!(&c.next_publish().payload[..], b"sunny");

    assert_eq!(h.delete_topic("weather/+"), Ok(true));
    assert_eq!(h.delete_topic("weather/+"), Ok(false), "no longer listed");
    assert_eq!(c.subscribe("weather/tomorrow", QoS::AtLeastOnce), refused());
    // Publishing to it is refused again, even for the subscription made while it was listed.
    assert_eq!(
        c.subscribe("sensors/marker", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    p.publish("weather/today", QoS::AtLeastOnce, false, "rain");
    p.publish("sensors/marker", QoS::AtLeastOnce, false, "marker");
    let got = c.next_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("sensors/marker", &b"marker"[..])
    );
    c.assert_no_publish(QUIET);
    assert_eq!(h.topic_list().entries(), LIST);
}

/// The change is in force for the very next packet on every worker, however the caller's next packet is
/// scheduled against the change: many create/subscribe/delete/subscribe rounds, each on a fresh topic.
#[test]
fn topic_list_changes_are_in_force_before_the_call_returns() {
    let broker = TestBroker::with(enforced());
    let h = &broker.handle;
    let clients: Vec<TestClient> = (0..4)
        .map(|i| TestClient::connect_to(broker.addr, &format!("tl-race-{i}")))
        .collect();
    for round in 0..50 {
        let topic = format!("race/{round}");
        assert_eq!(h.create_topic(&topic), Ok(true));
        for c in &clients {
            assert_eq!(
                c.subscribe(&topic, QoS::AtMostOnce),
                granted(QoS::AtMostOnce),
                "round {round}: just created"
            );
        }
        assert_eq!(h.delete_topic(&topic), Ok(true));
        for c in &clients {
            assert_eq!(
                c.subscribe(&topic, QoS::AtMostOnce),
                refused(),
                "round {round}: just deleted"
            );
        }
    }
}

#[test]
fn invalid_entries_are_refused_with_an_error() {
    let broker = TestBroker::with(enforced());
    let h = &broker.handle;
    for bad in ["a/#/b", "", "x+", "a/b#", "sensors/+x"] {
        let err = h.create_topic(bad).expect_err(bad);
        assert!(
            err.contains(&format!("`{bad}`")),
            "the error names the entry: {err}"
        );
    }
    assert_eq!(h.topic_list().entries(), LIST, "the list is unchanged");
    assert_eq!(h.delete_topic("never/listed"), Ok(false));
    // A deleted entry is compared literally: a topic that a pattern matches is not an entry.
    assert_eq!(h.delete_topic("sensors/x"), Ok(false));
    assert_eq!(h.topic_list().entries(), LIST);
}

#[test]
fn changes_are_saved_and_loaded_after_a_restart() {
    let dir = TempDir::new("topics-state");
    let state = dir.path().join("state").join("topics.ron");
    let with_state = || Settings {
        topics_state_file: Some(state.clone()),
        ..enforced()
    };

    let first = TestBroker::with(with_state());
    assert_eq!(first.handle.create_topic("weather/+"), Ok(true));
    assert_eq!(first.handle.delete_topic("chat/general"), Ok(true));
    assert_eq!(first.handle.create_topic("alerts"), Ok(true));
    first.stop();
    assert!(
        state.exists(),
        "the state file is written by shutdown at the latest"
    );

    let second = TestBroker::with(with_state());
    let expected = ["sensors/#", "devices/+/status", "weather/+", "alerts"];
    assert_eq!(second.handle.topic_list().entries(), expected);
    let c = TestClient::connect_to(second.addr, "tl-restart");
    assert_eq!(
        c.subscribe("weather/today", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    assert_eq!(
        c.subscribe("alerts", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    assert_eq!(c.subscribe("chat/general", QoS::AtLeastOnce), refused());
    // Further changes keep being saved.
    assert_eq!(second.handle.delete_topic("alerts"), Ok(true));
    second.stop();
    let third = TestBroker::with(with_state());
    assert_eq!(third.handle.topic_list().entries(), &expected[..3]);
}

#[test]
fn without_enforcement_everything_is_allowed() {
    let broker = TestBroker::with(Settings {
        enforce_topics: false,
        topics: list(&LIST),
        ..settings()
    });
    let c = TestClient::connect_to(broker.addr, "tl-open");
    assert_eq!(
        c.subscribe("weather/#", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    assert_eq!(
        c.subscribe("+", QoS::AtLeastOnce),
        granted(QoS::AtLeastOnce)
    );
    c.publish("weather/today", QoS::AtLeastOnce, false, "a");
    c.publish("top", QoS::AtLeastOnce, false, "b");
    assert_eq!(&c.next_publish().payload[..], b"a");
    assert_eq!(&c.next_publish().payload[..], b"b");
    broker
        .handle
        .publish(
            "weather/admin",
            b"c".to_vec(),
            shardmq::protocol::QoS::AtLeastOnce,
            false,
        )
        .unwrap();
    assert_eq!(&c.next_publish().payload[..], b"c");
    let t = broker.handle.totals();
    assert_eq!((t.subscriptions_refused, t.publishes_refused), (0, 0));
}
