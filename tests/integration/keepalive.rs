//! Keep alive (MQTT 3.1.1 §3.1.2.10, §3.12, §3.13).

use std::time::Duration;

use crate::common::*;

/// [MQTT-3.1.2-24]: a client silent for 1.5 × keep alive (1 s) is disconnected: not before ~1.5 s, and
/// promptly after (generous slack for slow CI).
#[test]
fn silent_client_closed_after_one_and_a_half_keep_alive_mqtt_3_1_2_24() {
    let broker = TestBroker::start();
    let (mut raw, _) = Raw::mqtt_connect(broker.addr, "ka-silent", true, 1);
    let took = raw.time_until_closed(Duration::from_secs(5));
    assert!(
        took >= Duration::from_millis(1400),
        "closed too early: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(2500),
        "closed too late: {took:?}"
    );
    wait_until("the session is gone", || {
        client_info(&broker.handle, "ka-silent").is_none()
    });
}

/// [MQTT-3.1.2-24]: keep alive 0 turns the mechanism off: 2 s of silence, then the connection still works.
#[test]
fn keep_alive_zero_disables_timeout_mqtt_3_1_2_24() {
    let broker = TestBroker::start();
    let (mut raw, _) = Raw::mqtt_connect(broker.addr, "ka-zero", true, 0);
    raw.expect_silence(Duration::from_secs(2));
    raw.ping();
}

/// [MQTT-3.12.4-1]: PINGREQ is answered with PINGRESP, exactly 0xD0 0x00.
#[test]
fn pingreq_answered_with_pingresp_bytes_mqtt_3_12_4_1() {
    let broker = TestBroker::start();
    let (mut raw, _) = Raw::mqtt_connect(broker.addr, "ka-ping", true, 30);
    for _ in 0..3 {
        raw.send(&[0xC0, 0x00]);
        raw.expect(&[0xD0, 0x00]);
    }
}

/// [MQTT-3.1.2-23], [MQTT-3.1.2-24]: a client that keeps sending PINGREQ within the window is not closed
/// (3.5 s of activity with keep alive 1 s, i.e. more than twice the 1.5 s window).
#[test]
fn client_pinging_within_window_stays_connected_mqtt_3_1_2_23() {
    let broker = TestBroker::start();
    let (mut raw, _) = Raw::mqtt_connect(broker.addr, "ka-active", true, 1);
    for _ in 0..7 {
        // The pause is the client's behaviour under test (idle but within the window), not a wait for the
        // broker; any byte or close during it fails the test.
        raw.expect_silence(Duration::from_millis(500));
        raw.ping();
    }
    assert!(client_info(&broker.handle, "ka-active").is_some_and(|c| c.connected));
}
