//! Mosquitto's own command-line clients (a second, independent MQTT implementation) against shardmq.
//! Needs the `mosquitto-clients` package; .ci/run installs it.

use std::process::{Command, Output, Stdio};

use crate::common::*;

fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {:?} ({e}); install the mosquitto-clients package",
                cmd.get_program()
            )
        });
    child.wait_with_output().expect("mosquitto client output")
}

/// Waits until the broker lists a session for `client_id` with `filters` subscriptions.
fn wait_subscribed(broker: &TestBroker, client_id: &str, filters: usize) {
    wait_until(&format!("{client_id} has subscribed"), || {
        broker
            .handle
            .clients()
            .iter()
            .any(|c| c.client_id == client_id && c.subscriptions.len() == filters)
    });
}

#[test]
fn mosquitto_pub_to_mosquitto_sub_at_every_qos() {
    let broker = TestBroker::start();
    let port = broker.port().to_string();
    for qos in ["0", "1", "2"] {
        let id = format!("msub-{qos}");
        let sub = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-i",
                &id,
                "-q",
                qos,
                "-t",
                "m/#",
                "-v",
                "-C",
                "2",
                "-W",
                "10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (install mosquitto-clients)");
        wait_subscribed(&broker, &id, 1);
        for (topic, msg) in [("m/a", "one"), ("m/b/c", "two")] {
            let out = run(Command::new("mosquitto_pub").args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                qos,
                "-t",
                topic,
                "-m",
                msg,
            ]));
            assert!(
                out.status.success(),
                "mosquitto_pub: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = sub.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "mosquitto_sub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "m/a one\nm/b/c two\n",
            "QoS {qos}"
        );
    }
}

#[test]
fn retained_message_reaches_a_later_mosquitto_sub() {
    let broker = TestBroker::start();
    let port = broker.port().to_string();
    let out = run(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "r/x",
        "-m",
        "kept",
        "-r",
        "-q",
        "1",
    ]));
    assert!(out.status.success());
    let out = run(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "r/#",
        "-v",
        "-C",
        "1",
        "-W",
        "10",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "r/x kept\n");
}
