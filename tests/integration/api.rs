//! The internal API (BrokerHandle): clients, disconnect, history, recent, publish, totals — checked
//! against what real clients did and received.

use std::time::{Duration, SystemTime};

use crate::common::*;
use rumqttc::{LastWill, Packet, QoS};
use shardmq::config::Limits;
use shardmq::events::EventKind;
use shardmq::message::{home_of, partition_of};
use shardmq::protocol::QoS as BQoS;
use shardmq::shard::{ClientInfo, WillInfo};
use shardmq::{BrokerHandle, Settings};

const QUIET: Duration = Duration::from_millis(200);

fn client(h: &BrokerHandle, id: &str) -> Option<ClientInfo> {
    h.clients().into_iter().find(|c| c.client_id == id)
}

fn persistent(addr: std::net::SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(addr, id);
    o.set_clean_session(false);
    o
}

/// Connects and returns the client with the CONNACK's session present flag.
fn connect_with_present(o: rumqttc::MqttOptions) -> (TestClient, bool) {
    let c = TestClient::start(o);
    match c.next_packet() {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
            (c, ack.session_present)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn clients_lists_what_each_client_connected_with() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    let mut o = options(broker.addr, "api-a");
    o.set_keep_alive(Duration::from_secs(25));
    o.set_credentials("ann", "pw");
    o.set_last_will(LastWill::new("wills/api-a", "gone", QoS::AtLeastOnce, true));
    let a = TestClient::connect(o);
    a.subscribe("y", QoS::AtMostOnce);
    a.subscribe("x/+", QoS::ExactlyOnce);
    // MQTT 3.1, no will, persistent session, keep alive 0.
    let (_b, code, _) = RawConnect {
        level: 3,
        clean: false,
        keep_alive: 0,
        ..RawConnect::new("api-b")
    }
    .connect(broker.addr);
    assert_eq!(code, 0);

    let all = h.clients();
    let ids: Vec<&str> = all.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["api-a", "api-b"], "sorted by client id");

    let a = &all[0];
    assert!(a.connected);
    assert_eq!(a.username.as_deref(), Some("ann"));
    let peer = a.peer.expect("peer of a connected client");
    assert!(peer.ip().is_loopback());
    assert_ne!(
        peer.port(),
        broker.port(),
        "the client's address, not the listener's"
    );
    assert_eq!(a.protocol_level, Some(4));
    assert_eq!(a.keep_alive, 25);
    assert!(a.clean_session);
    assert_eq!(
        a.will,
        Some(WillInfo {
            topic: "wills/api-a".into(),
            qos: BQoS::AtLeastOnce,
            retain: true
        })
    );
    assert_eq!(
        a.subscriptions,
        vec![
            ("x/+".to_string(), BQoS::ExactlyOnce),
            ("y".to_string(), BQoS::AtMostOnce)
        ]
    );
    assert_eq!((a.inflight, a.queued, a.dropped), (0, 0, 0));
    // A fresh session moves to the worker of its first topic ("y"); "api-b" sent no topic and stays home.
    assert_eq!(a.shard, partition_of("y", h.workers()));
    assert!(a.connected_since.is_some() && a.idle_secs.is_some());

    let b = &all[1];
    assert!(b.connected);
    assert_eq!(b.username, None);
    assert_eq!(b.protocol_level, Some(3));
    assert_eq!(b.keep_alive, 0);
    assert!(!b.clean_session);
    assert_eq!(b.will, None);
    assert!(b.subscriptions.is_empty());
    assert_eq!(b.shard, home_of("api-b", h.workers()));
}

#[test]
fn inflight_and_queued_counts_follow_unacknowledged_messages() {
    let broker = TestBroker::with(Settings {
        limits: Limits {
            max_inflight: 2,
            ..Limits::default()
        },
        ..settings()
    });
    let h = &broker.handle;
    // A raw subscriber that never acknowledges.
    let (mut raw, code, _) = RawConnect::new("api-slow").connect(broker.addr);
    assert_eq!(code, 0);
    raw.send(&subscribe_packet(1, &[("slow/t", 1)]));
    raw.expect(&[0x90, 0x03, 0x00, 0x01, 0x01]);
    for i in 0..5u8 {
        h.publish("slow/t", vec![b'0' + i], BQoS::AtLeastOnce, false)
            .unwrap();
    }
    // The window holds 2; the rest waits.
    let first = raw.read_packet();
    let second = raw.read_packet();
    assert_eq!((first[0], second[0]), (0x32, 0x32));
    wait_until("5 messages are either in flight or queued", || {
        client(h, "api-slow").is_some_and(|c| c.inflight + c.queued == 5)
    });
    let info = client(h, "api-slow").unwrap();
    assert_eq!((info.inflight, info.queued), (2, 3));
    // Acknowledging the first frees one slot: the third message is sent.
    // Fixed header (2), topic length (2), "slow/t" (6), then the packet id.
    let pkid = u16::from_be_bytes([first[10], first[11]]);
    raw.send(&[0x40, 0x02, (pkid >> 8) as u8, pkid as u8]);
    let third = raw.read_packet();
    assert_eq!(third[0], 0x32);
    assert_eq!(*third.last().unwrap(), b'2');
    wait_until("one fewer queued", || {
        client(h, "api-slow").is_some_and(|c| (c.inflight, c.queued) == (2, 2))
    });
}

#[test]
fn an_offline_session_is_listed_and_queues_until_it_returns() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    let (c, present) = connect_with_present(persistent(broker.addr, "api-off"));
    assert!(!present);
    c.subscribe("off/t", QoS::AtLeastOnce);
    c.disconnect();
    wait_until("the session is offline", || {
        client(h, "api-off").is_some_and(|c| !c.connected)
    });
    let info = client(h, "api-off").unwrap();
    assert_eq!(
        (info.peer, info.protocol_level, info.idle_secs, info.will),
        (None, None, None, None)
    );
    assert_eq!(
        info.subscriptions,
        vec![("off/t".to_string(), BQoS::AtLeastOnce)]
    );
    assert_eq!(info.queued, 0);

    let p = TestClient::connect_to(broker.addr, "api-off-pub");
    for i in 0..3 {
        p.publish("off/t", QoS::AtLeastOnce, false, format!("m{i}"));
        wait_until("the message is queued", || {
            client(h, "api-off").is_some_and(|c| c.queued == i + 1)
        });
    }
    // QoS 0 is not kept for an offline session.
    p.publish("off/t", QoS::AtMostOnce, false, "q0");
    p.publish("off/t", QoS::AtLeastOnce, false, "m3");
    wait_until("the QoS 1 message after it is queued", || {
        client(h, "api-off").is_some_and(|c| c.queued == 4)
    });

    let (c, present) = connect_with_present(persistent(broker.addr, "api-off"));
    assert!(present);
    for i in 0..4 {
        assert_eq!(c.next_publish().payload, format!("m{i}").as_bytes());
    }
    wait_until("the queue drains and everything is acknowledged", || {
        client(h, "api-off").is_some_and(|c| c.connected && c.queued == 0 && c.inflight == 0)
    });
}

#[test]
fn disconnect_closes_the_client_and_publishes_its_will() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    let watcher = TestClient::connect_to(broker.addr, "api-watch");
    watcher.subscribe("wills/#", QoS::AtLeastOnce);
    let mut o = options(broker.addr, "api-victim");
    o.set_last_will(LastWill::new(
        "wills/api-victim",
        "bye",
        QoS::AtLeastOnce,
        false,
    ));
    let victim = TestClient::connect(o);

    assert!(h.disconnect("api-victim", false));
    victim.expect_closed();
    let will = watcher.next_publish();
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("wills/api-victim", &b"bye"[..])
    );
    assert!(
        client(h, "api-victim").is_none(),
        "a clean session ends with its connection"
    );
    assert!(!h.disconnect("api-victim", false), "already gone");
    assert!(!h.disconnect("nobody", false));
    assert!(!h.disconnect("nobody", true));
    assert!(
        client(h, "api-watch").unwrap().connected,
        "others stay connected"
    );
}

#[test]
fn disconnect_keeps_or_discards_a_persistent_session() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    // Kept: the session goes offline and stays listed.
    let (keep, _) = connect_with_present(persistent(broker.addr, "api-keep"));
    keep.subscribe("keep/t", QoS::AtLeastOnce);
    assert!(h.disconnect("api-keep", false));
    keep.expect_closed();
    let info = client(h, "api-keep").expect("kept");
    assert!(!info.connected);
    assert_eq!(info.subscriptions.len(), 1);

    // Discarded while offline.
    assert!(h.disconnect("api-keep", true));
    assert!(client(h, "api-keep").is_none());
    let (_again, present) = connect_with_present(persistent(broker.addr, "api-keep"));
    assert!(!present, "the stored session is gone");
    assert!(client(h, "api-keep").unwrap().subscriptions.is_empty());

    // Discarded while connected: closed, and nothing remains.
    let (live, _) = connect_with_present(persistent(broker.addr, "api-live"));
    live.subscribe("live/t", QoS::AtLeastOnce);
    assert!(h.disconnect("api-live", true));
    live.expect_closed();
    assert!(client(h, "api-live").is_none());
    // Back with a new session: the old subscription does not deliver to it. A marker subscriber that
    // is subscribed to the same topic shows the publish went through.
    let (back, present) = connect_with_present(persistent(broker.addr, "api-live"));
    assert!(!present);
    assert!(client(h, "api-live").unwrap().subscriptions.is_empty());
    let marker = TestClient::connect_to(broker.addr, "api-marker");
    marker.subscribe("live/t", QoS::AtLeastOnce);
    marker.publish("live/t", QoS::AtLeastOnce, false, "x");
    assert_eq!(&marker.next_publish().payload[..], b"x");
    back.assert_no_publish(QUIET);
}

#[test]
fn history_keeps_the_last_ten_values_newest_first() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    let sub = TestClient::connect_to(broker.addr, "api-hist-sub");
    sub.subscribe("hist/t", QoS::AtLeastOnce);
    let p = TestClient::connect_to(broker.addr, "api-hist-pub");
    let before = SystemTime::now();
    let qos = |i: usize| {
        if i % 2 == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    };
    for i in 0..12 {
        p.publish("hist/t", qos(i), i == 10, format!("v{i}"));
    }
    for i in 0..12 {
        assert_eq!(sub.next_publish().payload, format!("v{i}").as_bytes());
    }
    let after = SystemTime::now();
    let hist = h.history("hist/t");
    let payloads: Vec<String> = hist
        .iter()
        .map(|e| String::from_utf8(e.msg.payload.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (2..12).rev().map(|i| format!("v{i}")).collect();
    assert_eq!(payloads, expected);
    for (e, i) in hist.iter().zip((2..12).rev()) {
        assert_eq!(&*e.msg.publisher, "api-hist-pub");
        assert_eq!(&*e.msg.topic, "hist/t");
        assert_eq!(e.msg.qos as u8, qos(i) as u8, "QoS of v{i}");
        assert_eq!(e.msg.retain, i == 10, "retain flag of v{i}");
        assert!(before <= e.msg.time && e.msg.time <= after);
    }
    assert!(
        hist.windows(2).all(|w| w[0].msg.time >= w[1].msg.time),
        "newest first"
    );
    assert!(h.history("hist/other").is_empty());
    assert!(h.history("hist/+").is_empty(), "a filter is not a topic");
}

#[test]
fn history_len_sets_how_many_values_are_kept() {
    let broker = TestBroker::with(Settings {
        limits: Limits {
            history_len: 3,
            ..Limits::default()
        },
        ..settings()
    });
    for i in 0..5u8 {
        broker
            .handle
            .publish("hist3/t", vec![b'0' + i], BQoS::AtMostOnce, false)
            .unwrap();
    }
    wait_until("the last value is recorded", || {
        broker
            .handle
            .history("hist3/t")
            .first()
            .is_some_and(|e| &e.msg.payload[..] == b"4")
    });
    let hist = broker.handle.history("hist3/t");
    let values: Vec<&[u8]> = hist.iter().map(|e| &e.msg.payload[..]).collect();
    assert_eq!(values, [b"4", b"3", b"2"]);
    assert!(hist.iter().all(|e| &*e.msg.publisher == "$admin"));
}

#[test]
fn recent_lists_the_latest_topics_newest_first() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    assert!(h.recent().is_empty());
    let sub = TestClient::connect_to(broker.addr, "api-recent-sub");
    sub.subscribe("r/#", QoS::AtLeastOnce);
    let p = TestClient::connect_to(broker.addr, "api-recent-pub");
    for (topic, value) in [
        ("r/a", "a1"),
        ("r/b", "b1"),
        ("r/c", "c1"),
        ("r/a", "a2"),
        ("r/d", "d1"),
    ] {
        p.publish(topic, QoS::AtLeastOnce, false, value);
        // One at a time, so the publish times are ordered whatever the partitions.
        assert_eq!(sub.next_publish().payload, value.as_bytes());
    }
    let recent = h.recent();
    let got: Vec<(String, String, u64)> = recent
        .iter()
        .map(|r| {
            (
                r.topic.to_string(),
                String::from_utf8(r.last.payload.to_vec()).unwrap(),
                r.count,
            )
        })
        .collect();
    let expected = [
        ("r/d", "d1", 1),
        ("r/a", "a2", 2),
        ("r/c", "c1", 1),
        ("r/b", "b1", 1),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(t, v, n)| (t.to_string(), v.to_string(), *n))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn recent_is_limited_to_recent_topics() {
    let limits = Limits {
        recent_topics: 3,
        ..Limits::default()
    };
    let broker = TestBroker::with(Settings {
        limits,
        ..settings()
    });
    let sub = TestClient::connect_to(broker.addr, "api-recent3");
    sub.subscribe("lim/#", QoS::AtLeastOnce);
    for i in 0..6 {
        broker
            .handle
            .publish(&format!("lim/{i}"), b"v".to_vec(), BQoS::AtLeastOnce, false)
            .unwrap();
        sub.next_publish();
    }
    let topics: Vec<String> = broker
        .handle
        .recent()
        .iter()
        .map(|r| r.topic.to_string())
        .collect();
    assert_eq!(topics, ["lim/5", "lim/4", "lim/3"]);
}

#[test]
fn publish_through_the_api_reaches_subscribers_and_retains() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    let sub = TestClient::connect_to(broker.addr, "api-pub-sub");
    sub.subscribe("adm/#", QoS::ExactlyOnce);
    h.publish("adm/x", b"hi".to_vec(), BQoS::AtLeastOnce, false)
        .unwrap();
    let got = sub.next_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.qos, got.retain),
        ("adm/x", &b"hi"[..], QoS::AtLeastOnce, false)
    );

    h.publish("adm/ret", b"keep".to_vec(), BQoS::AtLeastOnce, true)
        .unwrap();
    let live = sub.next_publish();
    assert_eq!(
        (live.topic.as_str(), live.retain),
        ("adm/ret", false),
        "live copies go out with RETAIN 0"
    );
    let later = TestClient::connect_to(broker.addr, "api-pub-later");
    later.subscribe("adm/ret", QoS::AtLeastOnce);
    let kept = later.next_publish();
    assert_eq!(
        (kept.topic.as_str(), &kept.payload[..], kept.retain),
        ("adm/ret", &b"keep"[..], true)
    );
    assert_eq!(&*h.history("adm/ret")[0].msg.publisher, "$admin");
}

/// Once a client has its SUBACK, a publish made after it is delivered, whichever worker holds the topic
/// and however the SUBSCRIBE's routing is scheduled against the publish: many rounds on fresh topics.
#[test]
fn a_publish_right_after_the_suback_is_delivered() {
    let broker = TestBroker::start();
    let sub = TestClient::connect_to(broker.addr, "api-suback");
    for round in 0..100 {
        let topic = format!("suback/{round}");
        sub.subscribe(&topic, QoS::AtLeastOnce);
        broker
            .handle
            .publish(&topic, b"now".to_vec(), BQoS::AtLeastOnce, false)
            .unwrap();
        let got = sub
            .try_next_packet(WAIT)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        match got {
            Packet::Publish(p) => assert_eq!(p.topic, topic, "round {round}"),
            other => panic!("round {round}: expected the PUBLISH, got {other:?}"),
        }
    }
}

#[test]
fn publish_through_the_api_refuses_invalid_topics() {
    let broker = TestBroker::with(Settings {
        limits: Limits {
            max_packet_size: 1024,
            ..Limits::default()
        },
        ..settings()
    });
    let h = &broker.handle;
    for bad in ["", "a/+", "a/#", "#", "a\0b"] {
        let err = h
            .publish(bad, b"x".to_vec(), BQoS::AtMostOnce, false)
            .expect_err(bad);
        assert!(err.contains("not a valid topic name"), "{bad:?}: {err}");
    }
    assert!(h
        .publish("big", vec![0; 2048], BQoS::AtMostOnce, false)
        .is_err());
    assert!(h.recent().is_empty(), "nothing was published");
    assert_eq!(h.totals().messages_in, 0);
}

#[test]
fn totals_count_connections_and_messages() {
    let broker = TestBroker::start();
    let h = &broker.handle;
    assert_eq!(h.totals(), shardmq::metrics::Totals::default());
    let sub = TestClient::connect_to(broker.addr, "api-tot-sub");
    sub.subscribe("tot/t", QoS::AtLeastOnce);
    let other = TestClient::connect_to(broker.addr, "api-tot-other");
    other.subscribe("tot/t", QoS::AtLeastOnce);
    let p = TestClient::connect_to(broker.addr, "api-tot-pub");
    wait_until("three connections", || h.totals().connections == 3);
    assert_eq!(h.totals().sessions, 3);
    for i in 0..4 {
        p.publish("tot/t", QoS::AtLeastOnce, false, format!("{i}"));
    }
    for _ in 0..4 {
        sub.next_publish();
        other.next_publish();
    }
    wait_until("4 in and 8 out", || {
        let t = h.totals();
        t.messages_in >= 4 && t.messages_out >= 8
    });
    let t = h.totals();
    assert_eq!((t.messages_in, t.messages_out, t.dropped), (4, 8, 0));
    assert!(t.bytes_in > 0 && t.bytes_out > 0);
    other.disconnect();
    wait_until("one connection fewer", || h.totals().connections == 2);
    wait_until("its clean session ended", || h.totals().sessions == 2);
    sub.assert_no_publish(QUIET);
}

/// A QoS 2 exchange in each direction shows in the event feed, for the admin console to display.
#[test]
fn qos2_exchanges_appear_in_the_event_feed() {
    let broker = TestBroker::start();
    let sub = TestClient::connect_to(broker.addr, "q2-sub");
    sub.subscribe("q2/t", QoS::ExactlyOnce);
    let publisher = TestClient::connect_to(broker.addr, "q2-pub");
    publisher.publish_acked("q2/t", QoS::ExactlyOnce, false, "once");
    assert_eq!(&sub.next_publish().payload[..], b"once");
    let completed = |client: &str, dir: &str| {
        broker.handle.events_since(0).iter().any(|e| {
            matches!(&e.kind, EventKind::Qos2Completed { client_id, direction, .. }
                if client_id == client && *direction == dir)
        })
    };
    wait_until("the publisher's QoS 2 exchange is reported", || {
        completed("q2-pub", "received")
    });
    // rumqttc answers PUBREL with PUBCOMP on its own; the event follows that PUBCOMP.
    wait_until("the subscriber's QoS 2 exchange is reported", || {
        completed("q2-sub", "delivered")
    });
}
