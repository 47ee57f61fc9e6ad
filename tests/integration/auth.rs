//! Login: bcrypt accounts from Settings and from a password file, anonymous access, refusal codes
//! [MQTT-3.2.2-3] (0x04 bad user name or password, 0x05 not authorized), and logins never delaying
//! delivery to connected clients (bcrypt runs on the auth pool, not on a worker).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use rumqttc::QoS;
use shardmq::config::Overrides;
use shardmq::Settings;

const CONNACK_BAD_CREDENTIALS: u8 = 0x04;
const CONNACK_NOT_AUTHORIZED: u8 = 0x05;

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// Login required; accounts `ann` (secret) and `bob@example.com` (hunter2).
fn locked() -> Settings {
    Settings {
        allow_anonymous: false,
        users: vec![
            ("ann".into(), hash("secret")),
            ("bob@example.com".into(), hash("hunter2")),
        ],
        ..settings()
    }
}

/// Asserts a refusal with `code`, then that the broker closes the connection.
fn assert_refused(addr: std::net::SocketAddr, connect: RawConnect, code: u8) {
    let (mut raw, got, present) = connect.connect(addr);
    assert_eq!(got, code, "CONNACK return code");
    assert!(
        !present,
        "session present must be 0 on a refusal [MQTT-3.2.2-4]"
    );
    raw.expect_closed();
}

#[test]
fn correct_password_is_accepted() {
    let broker = TestBroker::with(locked());
    let (mut raw, code, _) = RawConnect::new("auth-raw")
        .credentials("ann", b"secret")
        .connect(broker.addr);
    assert_eq!(code, 0);
    // The connection is live: PINGREQ → PINGRESP.
    raw.send(&[0xc0, 0x00]);
    raw.expect(&[0xd0, 0x00]);

    // And with rumqttc, through a whole publish/subscribe round trip.
    let mut o = options(broker.addr, "auth-ann");
    o.set_credentials("ann", "secret");
    let c = TestClient::connect(o);
    c.subscribe("auth/t", QoS::AtLeastOnce);
    c.publish("auth/t", QoS::AtLeastOnce, false, "in");
    assert_eq!(&c.next_publish().payload[..], b"in");
    let info = broker
        .handle
        .clients()
        .into_iter()
        .find(|i| i.client_id == "auth-ann")
        .expect("listed");
    assert_eq!(info.username.as_deref(), Some("ann"));
}

#[test]
fn wrong_password_is_refused_with_0x04_and_closed() {
    let broker = TestBroker::with(locked());
    assert_refused(
        broker.addr,
        RawConnect::new("auth-w").credentials("ann", b"Secret"),
        CONNACK_BAD_CREDENTIALS,
    );
    // Another account's password does not open this one.
    assert_refused(
        broker.addr,
        RawConnect::new("auth-w2").credentials("ann", b"hunter2"),
        CONNACK_BAD_CREDENTIALS,
    );
    // A user name without a password.
    let mut no_pw = RawConnect::new("auth-w3");
    no_pw.username = Some("ann");
    assert_refused(broker.addr, no_pw, CONNACK_BAD_CREDENTIALS);

    // rumqttc sees the refusal as the end of the connection.
    let mut o = options(broker.addr, "auth-w4");
    o.set_credentials("ann", "wrong");
    let c = TestClient::start(o);
    let err = c
        .try_next_packet(WAIT)
        .expect_err("no CONNACK 0 for a wrong password");
    assert!(err.contains("BadUserNamePassword"), "{err}");
    assert!(
        broker.handle.clients().is_empty(),
        "no session for refused clients"
    );
}

#[test]
fn unknown_user_is_refused_with_0x04() {
    let broker = TestBroker::with(locked());
    assert_refused(
        broker.addr,
        RawConnect::new("auth-u").credentials("carol", b"secret"),
        CONNACK_BAD_CREDENTIALS,
    );
    // User names are compared exactly.
    assert_refused(
        broker.addr,
        RawConnect::new("auth-u2").credentials("Ann", b"secret"),
        CONNACK_BAD_CREDENTIALS,
    );
}

#[test]
fn no_user_name_without_anonymous_access_is_refused_with_0x05() {
    let broker = TestBroker::with(locked());
    assert_refused(
        broker.addr,
        RawConnect::new("auth-anon"),
        CONNACK_NOT_AUTHORIZED,
    );
    // The refusal closes only that connection: a client with credentials still gets in afterwards.
    let (_raw, code, _) = RawConnect::new("auth-after")
        .credentials("ann", b"secret")
        .connect(broker.addr);
    assert_eq!(code, 0);
}

#[test]
fn an_e_mail_address_is_a_user_name() {
    let broker = TestBroker::with(locked());
    let mut o = options(broker.addr, "auth-mail");
    o.set_credentials("bob@example.com", "hunter2");
    let c = TestClient::connect(o);
    c.subscribe("mail/t", QoS::AtMostOnce);
    assert_refused(
        broker.addr,
        RawConnect::new("auth-mail2").credentials("bob@example.com", b"secret"),
        CONNACK_BAD_CREDENTIALS,
    );
    assert_refused(
        broker.addr,
        RawConnect::new("auth-mail3").credentials("bob", b"hunter2"),
        CONNACK_BAD_CREDENTIALS,
    );
}

/// Settings as the broker builds them from a config file naming a password file (relative to the
/// config's directory).
fn settings_with_password_file(dir: &Path) -> Settings {
    let ron = "(auth: (allow_anonymous: false, password_file: \"passwd\"))";
    let ov = Overrides {
        listen: Some("127.0.0.1:0".into()),
        threads: Some(test_threads()),
        log_level: None,
        admin: None,
    };
    let s = Settings::from_ron(ron, dir, &ov).expect("config with a password file");
    Settings {
        auth_threads: 1,
        log_level: settings().log_level,
        ..s
    }
}

#[test]
fn a_user_from_the_password_file_can_log_in() {
    let dir = TempDir::new("auth-passwd");
    let file = dir.path().join("passwd");
    shardmq::auth::passwd::set_user(&file, "dev@example.org", "pa:ss word", 4).unwrap();
    shardmq::auth::passwd::set_user(&file, "ops", "ops-pw", 4).unwrap();
    let broker = TestBroker::with(settings_with_password_file(dir.path()));

    let mut o = options(broker.addr, "auth-file");
    o.set_credentials("dev@example.org", "pa:ss word");
    let _c = TestClient::connect(o);
    let (_raw, code, _) = RawConnect::new("auth-file2")
        .credentials("ops", b"ops-pw")
        .connect(broker.addr);
    assert_eq!(code, 0);
    assert_refused(
        broker.addr,
        RawConnect::new("auth-file3").credentials("ops", b"pa:ss word"),
        CONNACK_BAD_CREDENTIALS,
    );
    assert_refused(
        broker.addr,
        RawConnect::new("auth-file4"),
        CONNACK_NOT_AUTHORIZED,
    );
}

#[test]
fn a_changed_password_in_the_file_replaces_the_old_one() {
    let dir = TempDir::new("auth-passwd2");
    let file = dir.path().join("passwd");
    shardmq::auth::passwd::set_user(&file, "ops", "old", 4).unwrap();
    shardmq::auth::passwd::set_user(&file, "ops", "new", 4).unwrap();
    let broker = TestBroker::with(settings_with_password_file(dir.path()));
    let (_raw, code, _) = RawConnect::new("auth-chg")
        .credentials("ops", b"new")
        .connect(broker.addr);
    assert_eq!(code, 0);
    assert_refused(
        broker.addr,
        RawConnect::new("auth-chg2").credentials("ops", b"old"),
        CONNACK_BAD_CREDENTIALS,
    );
}

#[test]
fn anonymous_access_with_accounts_configured() {
    let broker = TestBroker::with(Settings {
        allow_anonymous: true,
        ..locked()
    });
    // No user name: let in.
    let anon = TestClient::connect_to(broker.addr, "auth-anon-ok");
    anon.subscribe("anon/t", QoS::AtLeastOnce);
    anon.publish("anon/t", QoS::AtLeastOnce, false, "hi");
    assert_eq!(&anon.next_publish().payload[..], b"hi");
    // A client that sends a user name must still give the right password.
    assert_refused(
        broker.addr,
        RawConnect::new("auth-anon-bad").credentials("ann", b"nope"),
        CONNACK_BAD_CREDENTIALS,
    );
    let (_raw, code, _) = RawConnect::new("auth-anon-ann")
        .credentials("ann", b"secret")
        .connect(broker.addr);
    assert_eq!(code, 0);
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Login(u8),
    BurstDone,
}

/// bcrypt at cost 10 takes tens of milliseconds per check; 30 of them on one auth thread take seconds.
/// A subscriber and a publisher that are already connected must not wait for them: the burst between
/// them completes while the logins are still being checked.
#[test]
fn a_login_storm_does_not_stall_delivery() {
    const LOGINS: usize = 30;
    const BURST: usize = 200;
    let slow = bcrypt::hash("storm-pw", 10).unwrap();
    let broker = TestBroker::with(Settings {
        allow_anonymous: true,
        users: vec![("storm".into(), slow)],
        auth_threads: 1,
        // Every login a full bcrypt check, as when each is a first login (or a guess).
        auth_cache: Duration::ZERO,
        ..settings()
    });
    let sub = TestClient::connect_to(broker.addr, "storm-sub");
    sub.subscribe("storm/t", QoS::AtLeastOnce);
    let publisher = TestClient::connect_to(broker.addr, "storm-pub");
    wait_until("both clients are connected", || {
        broker.handle.totals().connections == 2
    });

    let (tx, events) = crossbeam_channel::unbounded();
    let mut logins = Vec::new();
    for i in 0..LOGINS {
        let mut raw = Raw::connect(broker.addr);
        raw.send(
            &RawConnect::new(&format!("storm-{i}"))
                .credentials("storm", b"storm-pw")
                .encode(),
        );
        let tx = tx.clone();
        logins.push(std::thread::spawn(move || {
            // Generous: the whole storm takes LOGINS × one cost-10 check on a debug build.
            raw.stream
                .set_read_timeout(Some(Duration::from_secs(120)))
                .unwrap();
            let mut ack = [0u8; 4];
            std::io::Read::read_exact(&mut raw.stream, &mut ack)
                .expect("CONNACK for a storm login");
            let _ = tx.send(Ev::Login(ack[3]));
            raw
        }));
    }
    // Every login has reached the broker (its CONNECT may still be in a socket buffer, but each socket
    // is accepted and its bytes sent) before the burst starts.
    wait_until("every storm connection is accepted", || {
        broker.handle.totals().connections == 2 + LOGINS as i64
    });

    for i in 0..BURST {
        publisher.publish("storm/t", QoS::AtLeastOnce, false, i.to_string());
    }
    for i in 0..BURST {
        let p = sub.next_publish();
        assert_eq!(
            p.payload,
            i.to_string().as_bytes(),
            "burst message {i} in order"
        );
    }
    tx.send(Ev::BurstDone).unwrap();
    drop(tx);

    let started = Instant::now();
    let mut order = Vec::new();
    while order.iter().filter(|e| matches!(e, Ev::Login(_))).count() < LOGINS {
        let left = Duration::from_secs(120).saturating_sub(started.elapsed());
        order.push(
            events
                .recv_timeout(left)
                .expect("every storm login is answered"),
        );
    }
    order.extend(events.try_iter());
    let burst_at = order
        .iter()
        .position(|e| *e == Ev::BurstDone)
        .expect("burst marker");
    assert!(
        burst_at < LOGINS,
        "the burst finished only after all {LOGINS} logins (position {burst_at} in {order:?})"
    );
    assert!(
        order
            .iter()
            .all(|e| matches!(e, Ev::BurstDone | Ev::Login(0))),
        "every storm login is accepted: {order:?}"
    );
    for t in logins {
        drop(t.join().unwrap());
    }
}
