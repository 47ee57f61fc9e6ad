//! Placement: a fresh session moves, with its connection, to the worker that owns the partition of the
//! first topic it publishes or subscribes to; its home worker forwards later CONNECTs with its client id
//! there until the session ends. Each test picks ids homed on worker 0 and topics owned by the last
//! worker, so that (with more than one worker) every test moves something.

use crate::common::*;
use rumqttc::QoS;
use shardmq::message::partition_of;

/// A broker, its worker count, a topic owned by the last worker and a client id homed on worker 0:
/// with more than one worker, that client moves when it names the topic.
fn fixture(tag: &str) -> (TestBroker, usize, String, String) {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let topic = topic_in_partition(&format!("pl/{tag}"), n - 1, n);
    let id = id_on_worker(&format!("pl-{tag}"), 0, n);
    (broker, n, topic, id)
}

fn shard_of(broker: &TestBroker, id: &str) -> usize {
    client_info(&broker.handle, id)
        .unwrap_or_else(|| panic!("{id} has no session"))
        .shard
}

/// The first SUBSCRIBE (exact filters) and the first PUBLISH decide; a wildcard first SUBSCRIBE keeps the
/// session at home, and so does anything after the first decision.
#[test]
fn a_fresh_session_moves_to_its_first_topic_and_stays_there() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let topic = topic_in_partition("pl/a", n - 1, n);
    let other = topic_in_partition("pl/b", 0, n);

    let sub_id = id_on_worker("pl-sub", 0, n);
    let sub = TestClient::connect_to(broker.addr, &sub_id);
    assert_eq!(
        shard_of(&broker, &sub_id),
        0,
        "at home until it names a topic"
    );
    sub.subscribe(&topic, QoS::AtLeastOnce);
    assert_eq!(shard_of(&broker, &sub_id), n - 1);
    // A second subscription, in another partition, does not move it again.
    sub.subscribe(&other, QoS::AtLeastOnce);
    assert_eq!(shard_of(&broker, &sub_id), n - 1);

    let wild_id = id_on_worker("pl-wild", 0, n);
    let wild = TestClient::connect_to(broker.addr, &wild_id);
    wild.subscribe("pl/#", QoS::AtLeastOnce);
    assert_eq!(
        shard_of(&broker, &wild_id),
        0,
        "a wildcard names no partition"
    );

    let pub_id = id_on_worker("pl-pub", 0, n);
    let publisher = TestClient::connect_to(broker.addr, &pub_id);
    publisher.publish_acked(&topic, QoS::AtLeastOnce, false, "first");
    assert_eq!(shard_of(&broker, &pub_id), n - 1);
    publisher.publish_acked(&other, QoS::AtLeastOnce, false, "second");
    assert_eq!(shard_of(&broker, &pub_id), n - 1);

    sub.expect_publish(&topic, b"first");
    sub.expect_publish(&other, b"second");
    wild.expect_publish(&topic, b"first");
    wild.expect_publish(&other, b"second");
}

/// The packet that decides the move is handled after it, on the new worker, followed by everything
/// pipelined behind it: CONNECT, SUBSCRIBE and a PUBLISH to the subscribed topic in one write.
#[test]
fn pipelined_packets_behind_the_deciding_one_follow_it() {
    let (broker, n, topic, id) = fixture("pipe");
    let mut raw = Raw::connect(broker.addr);
    let mut bytes = connect_packet(&id, true, 30);
    bytes.extend(subscribe_packet(1, &[(&topic, 1)]));
    for i in 0..20u16 {
        bytes.extend(publish_packet(
            &topic,
            1,
            100 + i,
            false,
            false,
            &i.to_be_bytes(),
        ));
    }
    raw.send(&bytes);
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    raw.expect(&[0x90, 0x03, 0x00, 0x01, 0x01]);
    // Per PUBLISH: its PUBACK, and its copy back to this subscriber; the copies must come in order.
    let mut acks = 0;
    let mut next = 0u16;
    while acks < 20 || next < 20 {
        let p = raw.read_packet();
        if p[0] == 0x40 {
            assert_eq!(u16::from_be_bytes([p[2], p[3]]), 100 + acks, "PUBACK order");
            acks += 1;
        } else {
            let m = parse_publish(&p);
            assert_eq!(m.topic, topic);
            assert_eq!(m.payload, next.to_be_bytes(), "copy {next} out of order");
            if let Some(pid) = m.pid {
                raw.send(&[0x40, 0x02, (pid >> 8) as u8, pid as u8]);
            }
            next += 1;
        }
    }
    assert_eq!(shard_of(&broker, &id), n - 1);
}

/// A moved persistent session: offline messages wait for it there, the reconnect (which reaches the
/// home worker) finds it, and a second connection takes the first over [MQTT-3.1.4-2].
#[test]
fn reconnect_and_takeover_find_a_moved_session() {
    let (broker, n, topic, id) = fixture("keep");
    let persistent = || {
        let mut o = options(broker.addr, &id);
        o.set_clean_session(false);
        o
    };
    let (sub, present) = TestClient::connect_session(persistent());
    assert!(!present);
    sub.subscribe(&topic, QoS::AtLeastOnce);
    sub.disconnect();
    wait_until("the moved session is offline", || {
        client_info(&broker.handle, &id).is_some_and(|c| !c.connected)
    });
    let publisher = TestClient::connect_to(broker.addr, "pl-keep-pub");
    publisher.publish_acked(&topic, QoS::AtLeastOnce, false, "while away");

    let (first, present) = TestClient::connect_session(persistent());
    assert!(present, "the session is found where it moved");
    first.expect_publish(&topic, b"while away");
    let (second, present) = TestClient::connect_session(persistent());
    assert!(present);
    first.expect_closed();
    publisher.publish_acked(&topic, QoS::AtLeastOnce, false, "to the second");
    second.expect_publish(&topic, b"to the second");
    assert_eq!(shard_of(&broker, &id), n - 1);
    let sessions = broker
        .handle
        .clients()
        .into_iter()
        .filter(|c| c.client_id == id)
        .count();
    assert_eq!(sessions, 1, "one session per client id");
}

/// A moved clean session ends; its id is immediately reused, over and over: each new connection gets a
/// new session (session present 0) that works, whether its CONNECT reached the old worker before or after
/// the home heard that the session had ended, and there is never more than one session per id.
#[test]
fn a_client_id_whose_moved_session_ended_starts_afresh() {
    let (broker, _, topic, id) = fixture("again");
    let publisher = TestClient::connect_to(broker.addr, "pl-again-pub");
    for round in 0..20 {
        let mut raw = Raw::connect(broker.addr);
        raw.send(&connect_packet(&id, true, 30));
        raw.expect(&[0x20, 0x02, 0x00, 0x00]);
        raw.subscribe(1, &[(&topic, 0)], &[0x00]);
        let payload = format!("round {round}");
        publisher.publish_acked(&topic, QoS::AtLeastOnce, false, payload.clone());
        let m = raw.read_publish();
        assert_eq!(
            (m.topic.as_str(), m.payload),
            (topic.as_str(), payload.into_bytes())
        );
        raw.send(&[0xE0, 0x00]); // DISCONNECT, and the next CONNECT follows at once
        raw.expect_closed();
    }
    wait_until("the last clean session is gone", || {
        client_info(&broker.handle, &id).is_none()
    });
    // And the id still works from scratch, at home until it names a topic.
    let c = TestClient::connect_to(broker.addr, &id);
    assert_eq!(shard_of(&broker, &id), 0);
    c.subscribe(&topic, QoS::AtMostOnce);
    publisher.publish_acked(&topic, QoS::AtLeastOnce, false, "last");
    c.expect_publish(&topic, b"last");
}

/// The admin API addresses a client by id, i.e. at its home worker; a moved client is still found.
#[test]
fn forced_disconnect_reaches_a_moved_client() {
    let (broker, n, topic, id) = fixture("kick");
    let c = TestClient::connect_to(broker.addr, &id);
    c.subscribe(&topic, QoS::AtLeastOnce);
    assert_eq!(shard_of(&broker, &id), partition_of(&topic, n));
    assert!(broker.handle.disconnect(&id, true));
    c.expect_closed();
    wait_until("the discarded session is gone", || {
        client_info(&broker.handle, &id).is_none()
    });
}

/// Placement does not pile every subscriber of one topic onto one worker: a session moves only while its
/// topic's worker has fewer than 16 connections more than its own, so fan-out stays spread.
#[test]
fn subscribers_of_one_topic_stay_spread_over_the_workers() {
    let broker = TestBroker::start();
    let n = broker.handle.workers();
    let topic = topic_in_partition("pl/fan", n - 1, n);
    let subs: Vec<(String, TestClient)> = (0..40)
        .map(|i| {
            let id = id_on_worker(&format!("pl-fan{i}"), 0, n);
            let c = TestClient::connect_to(broker.addr, &id);
            c.subscribe(&topic, QoS::AtMostOnce);
            (id, c)
        })
        .collect();
    let on = |w: usize| {
        subs.iter()
            .filter(|(id, _)| shard_of(&broker, id) == w)
            .count()
    };
    let (home, there) = (on(0), on(n - 1));
    if n > 1 {
        assert!(there > 0, "some moved");
        assert!(home > 0, "not all moved: {there} there");
        assert!(there <= home + 16, "{there} there, {home} at home");
    }
    let publisher = TestClient::connect_to(broker.addr, "pl-fan-pub");
    publisher.publish(&topic, QoS::AtMostOnce, false, "to all");
    for (_, c) in &subs {
        c.expect_publish(&topic, b"to all");
    }
}

/// A QoS 2 PUBLISH that moves its session is handled on the new worker, and so is its resend: the
/// packet id it recorded there makes the resend (DUP) acknowledged but not delivered again
/// [MQTT-4.3.3-2]; the will moves with the connection and is published when it drops.
#[test]
fn a_moved_session_keeps_exactly_once_and_its_will() {
    let (broker, n, topic, id) = fixture("once");
    let will_topic = "pl/will";
    let sub = TestClient::connect_to(broker.addr, "pl-once-sub");
    sub.subscribe(&topic, QoS::ExactlyOnce);
    sub.subscribe(will_topic, QoS::AtLeastOnce);

    let (mut raw, code, _) = RawConnect {
        will: Some((will_topic, b"dropped", 1, false)),
        ..RawConnect::new(&id)
    }
    .connect(broker.addr);
    assert_eq!(code, 0);
    raw.send(&publish_packet(&topic, 2, 7, false, false, b"once"));
    raw.expect(&[0x50, 0x02, 0x00, 0x07]); // PUBREC
    raw.send(&publish_packet(&topic, 2, 7, true, false, b"once"));
    raw.expect(&[0x50, 0x02, 0x00, 0x07]); // PUBREC again, nothing routed
    raw.send(&[0x62, 0x02, 0x00, 0x07]); // PUBREL
    raw.expect(&[0x70, 0x02, 0x00, 0x07]); // PUBCOMP
    assert_eq!(shard_of(&broker, &id), n - 1);
    let got = sub.next_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        (topic.as_str(), &b"once"[..])
    );
    // A marker from the same partition proves the resend was not delivered.
    let marker = marker_for(&topic, n);
    sub.subscribe(&marker, QoS::AtLeastOnce);
    let publisher = TestClient::connect_to(broker.addr, "pl-once-pub");
    publisher.publish_acked(&marker, QoS::AtLeastOnce, false, "marker");
    sub.expect_publish(&marker, b"marker");

    drop(raw); // no DISCONNECT: the will goes out
    sub.expect_publish(will_topic, b"dropped");
}
