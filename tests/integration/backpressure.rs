//! Flow control instead of loss: a connected QoS 1 subscriber that is slower than its publisher makes
//! the broker stop reading the publisher before the subscriber's queue overflows, so no message that
//! was acknowledged to the publisher is dropped.

use std::time::Instant;

use crate::common::*;

#[test]
fn slow_qos1_subscriber_pauses_the_publisher_instead_of_dropping() {
    let mut s = settings();
    s.limits.max_inflight = 1;
    s.limits.max_queued_messages = 20; // publishers pause once more than 10 wait
    let broker = TestBroker::with(s);
    const N: u8 = 60;

    let (mut sub, _) = Raw::mqtt_connect(broker.addr, "bp-sub", true, 0);
    sub.send(&subscribe_packet(1, &[("bp/t", 1)]));
    assert_eq!(
        sub.read_packet(),
        vec![0x90, 0x03, 0x00, 0x01, 0x01],
        "SUBACK"
    );

    // The publisher waits for each PUBACK before the next PUBLISH, so a paused broker (which does not
    // read it) holds it back; without flow control it would get every PUBACK at once.
    let addr = broker.addr;
    let publisher = std::thread::spawn(move || {
        let (mut p, _) = Raw::mqtt_connect(addr, "bp-pub", true, 0);
        for i in 1..=N {
            p.send(&publish_packet("bp/t", 1, u16::from(i), false, false, &[i]));
            p.expect(&[0x40, 0x02, 0x00, i]);
        }
    });

    // The subscriber reads one message at a time and acknowledges it: exactly one copy of each, in
    // order, none dropped.
    let deadline = Instant::now() + WAIT * 4;
    for i in 1..=N {
        assert!(Instant::now() < deadline, "timed out at message {i}");
        let p = parse_publish(&sub.read_packet());
        assert_eq!(p.payload, vec![i], "message {i} in order");
        let pid = p.pid.expect("QoS 1 has a packet id");
        sub.send(&[0x40, 0x02, (pid >> 8) as u8, pid as u8]);
    }
    publisher.join().expect("publisher thread");
    assert_eq!(broker.handle.totals().dropped, 0, "nothing was dropped");
}
