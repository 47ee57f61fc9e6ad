//! CONNECT and CONNACK (MQTT 3.1.1 §3.1, §3.2), driven with exact bytes.

use crate::common::*;

/// [MQTT-3.1.0-1]: the first packet from the client must be CONNECT; anything else closes the connection.
#[test]
fn first_packet_not_connect_closes_mqtt_3_1_0_1() {
    let broker = TestBroker::start();
    let mut raw = Raw::connect(broker.addr);
    raw.send(&[0xC0, 0x00]); // PINGREQ
    raw.expect_closed();
    let mut raw = Raw::connect(broker.addr);
    raw.send(&publish_packet("a/b", 0, 0, false, false, b"x"));
    raw.expect_closed();
    assert_broker_serves(broker.addr, "first-not-connect");
}

/// [MQTT-3.1.0-2]: a second CONNECT on a connection is a protocol violation and closes it.
#[test]
fn second_connect_closes_mqtt_3_1_0_2() {
    let broker = TestBroker::start();
    let (mut raw, _) = Raw::mqtt_connect(broker.addr, "twice", true, 0);
    raw.ping();
    raw.send(&connect_packet("twice", true, 0));
    raw.expect_closed();
}

/// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01 and then the connection is closed.
#[test]
fn unsupported_protocol_level_gets_connack_1_then_close_mqtt_3_1_2_2() {
    let broker = TestBroker::start();
    for (name, level) in [
        (&b"MQTT"[..], 5u8),
        (b"MQTT", 3),
        (b"MQTT", 0),
        (b"MQIsdp", 4),
    ] {
        let mut raw = Raw::connect(broker.addr);
        raw.send(
            &ConnectSpec {
                protocol: name,
                level,
                ..ConnectSpec::new("lvl")
            }
            .bytes(),
        );
        raw.expect(&[0x20, 0x02, 0x00, 0x01]);
        raw.expect_closed();
    }
    assert!(
        broker.handle.clients().is_empty(),
        "no session for a refused client"
    );
}

/// [MQTT-3.1.2-3]: the reserved connect flag must be 0, else the connection is closed (no CONNACK).
#[test]
fn reserved_connect_flag_closes_without_connack_mqtt_3_1_2_3() {
    let broker = TestBroker::start();
    let mut raw = Raw::connect(broker.addr);
    raw.send(
        &ConnectSpec {
            reserved_flag: true,
            ..ConnectSpec::new("reserved")
        }
        .bytes(),
    );
    raw.expect_closed();
    assert!(broker.handle.clients().is_empty());
}

/// [MQTT-3.1.3-6], [MQTT-3.1.3-7]: an empty client id with clean session 1 is accepted and the server
/// assigns a unique id.
#[test]
fn empty_client_id_with_clean_session_gets_assigned_id_mqtt_3_1_3_6() {
    let broker = TestBroker::start();
    let (mut a, present) = Raw::mqtt_connect(broker.addr, "", true, 0);
    assert!(!present);
    let (mut b, _) = Raw::mqtt_connect(broker.addr, "", true, 0);
    a.ping();
    b.ping();
    let clients = broker.handle.clients();
    assert_eq!(clients.len(), 2, "{clients:?}");
    assert!(
        clients
            .iter()
            .all(|c| !c.client_id.is_empty() && c.connected),
        "{clients:?}"
    );
    assert_ne!(
        clients[0].client_id, clients[1].client_id,
        "assigned ids are unique"
    );
}

/// [MQTT-3.1.3-8]: an empty client id with clean session 0 gets CONNACK 0x02 and the connection closes.
#[test]
fn empty_client_id_without_clean_session_refused_0x02_mqtt_3_1_3_8() {
    let broker = TestBroker::start();
    let mut raw = Raw::connect(broker.addr);
    raw.send(&connect_packet("", false, 0));
    raw.expect(&[0x20, 0x02, 0x00, 0x02]);
    raw.expect_closed();
    assert!(broker.handle.clients().is_empty());
}

/// [MQTT-3.2.2-1], [MQTT-3.2.2-2], [MQTT-3.2.2-3]: session present is 1 only when a stored session is
/// resumed with clean session 0; 0 for a new session and for clean session 1.
#[test]
fn session_present_flag_mqtt_3_2_2_1_to_3() {
    let broker = TestBroker::start();
    let disconnect = |mut raw: Raw| {
        raw.send(&[0xE0, 0x00]);
        raw.expect_closed();
    };
    let (raw, present) = Raw::mqtt_connect(broker.addr, "sp", false, 0);
    assert!(!present, "a new session");
    disconnect(raw);
    let (raw, present) = Raw::mqtt_connect(broker.addr, "sp", false, 0);
    assert!(present, "the stored session is resumed");
    disconnect(raw);
    let (raw, present) = Raw::mqtt_connect(broker.addr, "sp", true, 0);
    assert!(
        !present,
        "clean session 1 always starts fresh [MQTT-3.2.2-1]"
    );
    disconnect(raw);
    let (raw, present) = Raw::mqtt_connect(broker.addr, "sp", false, 0);
    assert!(!present, "the clean session discarded the stored one");
    disconnect(raw);
}

/// MQTT 3.1 clients ("MQIsdp", level 3) are accepted with CONNACK 0.
#[test]
fn mqtt_3_1_mqisdp_level_3_accepted() {
    let broker = TestBroker::start();
    let (mut raw, present) = ConnectSpec {
        protocol: b"MQIsdp",
        level: 3,
        ..ConnectSpec::new("v31")
    }
    .connect(broker.addr);
    assert!(!present);
    raw.ping();
    let info = client_info(&broker.handle, "v31").expect("session listed");
    assert_eq!(info.protocol_level, Some(3));
}
