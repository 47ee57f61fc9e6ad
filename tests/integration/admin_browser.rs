//! The admin console end to end in a real headless browser (Debian's chromium driven by playwright-core,
//! tests/browser/admin_e2e.mjs): log in, see a connected client, disconnect it with the button (its will
//! arrives at another client), create and delete a topic, publish from the form and see the history, see
//! a refused subscription in the events log. Screenshots go to target/screenshots/.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use rumqttc::{LastWill, QoS, SubscribeReasonCode};
use shardmq::topic::TopicList;
use shardmq::Settings;

const DEVICE: &str = "e2e-device";
const REFUSED: &str = "missing/topic";
const PUBLISH_TOPIC: &str = "sensors/kitchen/temp";

#[test]
fn admin_console_in_headless_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser test needs its node modules: run `cd tests/browser && npm ci` \
         (and `apt-get install -y chromium nodejs`)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium: `apt-get install -y chromium`"
    );

    let f = AdminFixture::start(Settings {
        enforce_topics: true,
        topics: TopicList::new(["sensors/#".to_string(), "wills/#".to_string()]).unwrap(),
        ..settings()
    });
    let addr = f.broker.addr;
    let watcher = TestClient::connect_to(addr, "e2e-watcher");
    watcher.subscribe("wills/#", QoS::AtLeastOnce);
    let mut o = options(addr, DEVICE);
    o.set_last_will(LastWill::new(
        "wills/e2e-device",
        "device lost",
        QoS::AtLeastOnce,
        false,
    ));
    let device = TestClient::connect(o);
    device.subscribe("sensors/#", QoS::AtLeastOnce);

    let refused = TestClient::connect_to(addr, "e2e-refused");
    assert_eq!(
        refused.subscribe(REFUSED, QoS::AtLeastOnce),
        vec![SubscribeReasonCode::Failure]
    );
    // A QoS 2 exchange in both directions for the events log: `refused` (subscribed to nothing)
    // publishes, the watcher receives at QoS 2. The device gets a QoS 1 copy through `sensors/#`.
    watcher.subscribe("sensors/qos2", QoS::ExactlyOnce);
    refused.publish_acked("sensors/qos2", QoS::ExactlyOnce, false, "exactly once");
    assert_eq!(&watcher.next_publish().payload[..], b"exactly once");
    assert_eq!(&device.next_publish().payload[..], b"exactly once");

    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("screenshots");
    let mut child = Command::new("node")
        .arg(browser_dir.join("admin_e2e.mjs"))
        .current_dir(&browser_dir)
        .env("ADMIN_URL", format!("http://{}/", f.http))
        .env("ADMIN_USER", ADMIN_USER)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DEVICE_ID", DEVICE)
        .env("REFUSED_FILTER", REFUSED)
        .env("PUBLISH_TOPIC", PUBLISH_TOPIC)
        .env("SCREENSHOT_DIR", &shots)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node (apt-get install -y nodejs)");
    // The script bounds each step itself (15 s); this bounds the whole run.
    let pid = child.id();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(s) => s.expect("wait for node"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("the browser test did not finish within 180 s");
        }
    };
    assert!(
        status.success(),
        "admin_e2e.mjs failed: {status}; screenshots in {}",
        shots.display()
    );

    // The page's Disconnect click published the device's will to the other client.
    watcher.expect_publish("wills/e2e-device", b"device lost");
    assert!(client_info(&f.broker.handle, DEVICE).is_none());
    // The page's own publishes went through the broker: the device (subscribed to sensors/#) is gone,
    // but the history holds both values, newest first.
    let h = f.broker.handle.history(PUBLISH_TOPIC);
    assert_eq!(h.len(), 2);
    assert_eq!(&h[0].msg.payload[..], b"22.0 second value");
    assert_eq!(h[0].msg.qos, shardmq::protocol::QoS::ExactlyOnce);
    assert!(h[0].msg.retain);
    // The topic the page created is deleted again.
    assert!(!f.broker.handle.topic_list().contains("e2e/room"));
    let kinds: Vec<_> = f
        .broker
        .handle
        .events_since(0)
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert!(kinds.contains(&shardmq::events::EventKind::TopicCreated {
        topic: "e2e/room".into()
    }));
    assert!(kinds.contains(&shardmq::events::EventKind::TopicDeleted {
        topic: "e2e/room".into()
    }));
    for name in [
        "02-dashboard",
        "03-clients",
        "06-publish-history",
        "07-events",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "screenshot {name}"
        );
    }
}
