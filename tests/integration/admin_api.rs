//! The admin console's JSON API over real HTTP (a tiny std-only client in common), with real MQTT
//! clients producing the state each endpoint reports, and the refusals: 401, CSRF, bad input.

use std::time::Duration;

use crate::common::*;
use rumqttc::{LastWill, QoS, SubscribeReasonCode};
use shardmq::topic::TopicList;
use shardmq::Settings;

fn get(f: &AdminFixture, cookie: &str, path: &str) -> HttpResponse {
    http(f.http, "GET", path, &[("Cookie", cookie)], None)
}

fn send(
    f: &AdminFixture,
    cookie: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> HttpResponse {
    http(f.http, method, path, &[("Cookie", cookie), CSRF], body)
}

fn enforced(entries: &[&str]) -> Settings {
    Settings {
        enforce_topics: true,
        topics: TopicList::new(entries.iter().map(|s| s.to_string())).unwrap(),
        ..settings()
    }
}

#[test]
fn login_cookie_basic_auth_and_401s() {
    let f = AdminFixture::start(settings());
    // Every endpoint but the login refuses an anonymous request.
    for (m, p) in [
        ("GET", "/api/clients"),
        ("GET", "/api/stats"),
        ("GET", "/api/events"),
        ("GET", "/api/topics"),
        ("GET", "/api/users"),
        ("GET", "/api/recent"),
        ("GET", "/api/history?topic=a"),
        ("DELETE", "/api/clients/x"),
        ("POST", "/api/publish"),
    ] {
        let r = http(f.http, m, p, &[CSRF], None);
        r.expect_error(401);
    }
    // The page itself is public and self-contained (no external URLs).
    let page = http(f.http, "GET", "/", &[], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/app.js"));
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    assert_eq!(http(f.http, "GET", "/app.js", &[], None).status, 200);

    let wrong = http(
        f.http,
        "POST",
        "/api/login",
        &[CSRF],
        Some(&format!(
            r#"{{"username":"{ADMIN_USER}","password":"nope"}}"#
        )),
    );
    wrong.expect_error(401);
    assert!(wrong.header("set-cookie").is_none());

    let raw = http(
        f.http,
        "POST",
        "/api/login",
        &[CSRF],
        Some(&format!(
            r#"{{"username":"{ADMIN_USER}","password":"{ADMIN_PASSWORD}"}}"#
        )),
    );
    assert_eq!(raw.status, 200);
    let set = raw.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let me = get(&f, &cookie, "/api/session");
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["username"], ADMIN_USER);

    // HTTP Basic, right and wrong.
    let basic = format!(
        "Basic {}",
        shardmq::admin_http::api::base64_encode(
            format!("{ADMIN_USER}:{ADMIN_PASSWORD}").as_bytes()
        )
    );
    let r = http(
        f.http,
        "GET",
        "/api/stats",
        &[("Authorization", &basic)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let bad = format!(
        "Basic {}",
        shardmq::admin_http::api::base64_encode(format!("{ADMIN_USER}:x").as_bytes())
    );
    http(
        f.http,
        "GET",
        "/api/stats",
        &[("Authorization", &bad)],
        None,
    )
    .expect_error(401);

    // Logout ends the session.
    assert_eq!(send(&f, &cookie, "POST", "/api/logout", None).status, 200);
    get(&f, &cookie, "/api/stats").expect_error(401);
    get(&f, "shardmq_session=forged", "/api/stats").expect_error(401);
}

#[test]
fn state_changing_requests_need_the_csrf_header() {
    let f = AdminFixture::start(enforced(&["a/#"]));
    let cookie = f.login();
    let victim = TestClient::connect_to(f.broker.addr, "csrf-victim");
    // A cross-site form post carries no custom header: refused, nothing changes.
    let no_header = |method: &str, path: &str, body: Option<&str>| {
        http(
            f.http,
            method,
            path,
            &[("Cookie", &cookie), ("Origin", "http://evil.example")],
            body,
        )
    };
    no_header("DELETE", "/api/clients/csrf-victim", None).expect_error(403);
    no_header("POST", "/api/topics", Some(r#"{"topic":"evil"}"#)).expect_error(403);
    no_header(
        "POST",
        "/api/publish",
        Some(r#"{"topic":"a/b","payload":"x"}"#),
    )
    .expect_error(403);
    no_header(
        "POST",
        "/api/login",
        Some(r#"{"username":"a","password":"b"}"#),
    )
    .expect_error(403);
    assert!(
        client_info(&f.broker.handle, "csrf-victim")
            .unwrap()
            .connected
    );
    assert!(!f.broker.handle.topic_list().contains("evil"));
    assert!(f.broker.handle.history("a/b").is_empty());
    drop(victim);
}

#[test]
fn clients_report_and_forced_disconnect_publishes_the_will() {
    let f = AdminFixture::start(settings());
    let cookie = f.login();
    let watcher = TestClient::connect_to(f.broker.addr, "adm-watcher");
    watcher.subscribe("wills/#", QoS::AtLeastOnce);
    let mut o = options(f.broker.addr, "adm-dev/1");
    o.set_keep_alive(Duration::from_secs(20));
    o.set_credentials("dev-user", "pw");
    o.set_last_will(LastWill::new(
        "wills/dev1",
        "dev1 gone",
        QoS::AtLeastOnce,
        false,
    ));
    let dev = TestClient::connect(o);
    dev.subscribe("cmd/dev1", QoS::ExactlyOnce);

    let r = get(&f, &cookie, "/api/clients");
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["total"], 2);
    let c = page["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "adm-dev/1")
        .expect("the device is listed")
        .clone();
    assert_eq!(c["connected"], true);
    assert_eq!(c["username"], "dev-user");
    assert_eq!(c["protocol_level"], 4);
    assert_eq!(c["keep_alive"], 20);
    assert_eq!(c["clean_session"], true);
    assert_eq!(c["will"]["topic"], "wills/dev1");
    assert_eq!(c["will"]["qos"], 1);
    assert_eq!(c["subscriptions"][0]["filter"], "cmd/dev1");
    assert_eq!(c["subscriptions"][0]["qos"], 2);
    assert!(c["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(c["connected_since"].as_str().unwrap().ends_with('Z'));
    assert!(c["idle_secs"].as_f64().unwrap() >= 0.0);

    // Filter and paging.
    let r = get(&f, &cookie, "/api/clients?filter=DEV&limit=1").json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["clients"][0]["client_id"], "adm-dev/1");
    let r = get(&f, &cookie, "/api/clients?offset=1&limit=1").json();
    assert_eq!(
        (r["total"].as_u64(), r["clients"].as_array().unwrap().len()),
        (Some(2), 1)
    );
    assert_eq!(
        r["clients"][0]["client_id"], "adm-watcher",
        "sorted, second page"
    );
    get(&f, &cookie, "/api/clients?limit=lots").expect_error(400);

    // Unknown client: 404, nothing happens.
    send(&f, &cookie, "DELETE", "/api/clients/nobody", None).expect_error(404);
    send(
        &f,
        &cookie,
        "DELETE",
        "/api/clients/adm-dev%2F1?discard_session=maybe",
        None,
    )
    .expect_error(400);
    assert!(
        client_info(&f.broker.handle, "adm-dev/1")
            .unwrap()
            .connected
    );

    // Forced disconnect (the id is percent-encoded in the path): the will goes out.
    let r = send(&f, &cookie, "DELETE", "/api/clients/adm-dev%2F1", None);
    assert_eq!(r.status, 200, "{}", r.body);
    watcher.expect_publish("wills/dev1", b"dev1 gone");
    wait_until("the device is gone", || {
        client_info(&f.broker.handle, "adm-dev/1").is_none()
    });

    // A persistent session stays offline after a forced disconnect, unless discarded.
    let mut o = options(f.broker.addr, "adm-keep");
    o.set_clean_session(false);
    let keep = TestClient::connect(o);
    keep.subscribe("q/keep", QoS::AtLeastOnce);
    assert_eq!(
        send(&f, &cookie, "DELETE", "/api/clients/adm-keep", None).status,
        200
    );
    wait_until("the session is offline", || {
        client_info(&f.broker.handle, "adm-keep").is_some_and(|c| !c.connected)
    });
    // Its queue grows while it is offline, as the clients endpoint shows.
    watcher.publish_acked("q/keep", QoS::AtLeastOnce, false, "m1");
    wait_until("a message is queued", || {
        let page = get(&f, &cookie, "/api/clients?filter=adm-keep").json();
        page["clients"][0]["queued"] == 1 && page["clients"][0]["connected"] == false
    });
    let r = send(
        &f,
        &cookie,
        "DELETE",
        "/api/clients/adm-keep?discard_session=true",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("the session is discarded", || {
        client_info(&f.broker.handle, "adm-keep").is_none()
    });
}

#[test]
fn topics_are_created_and_deleted_and_enforced() {
    let f = AdminFixture::start(enforced(&["sensors/#"]));
    let cookie = f.login();
    let c = TestClient::connect_to(f.broker.addr, "adm-topics");
    assert_eq!(
        c.subscribe("room/1", QoS::AtLeastOnce),
        vec![SubscribeReasonCode::Failure]
    );

    let r = send(
        &f,
        &cookie,
        "POST",
        "/api/topics",
        Some(r#"{"topic":"room/1"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        c.subscribe("room/1", QoS::AtLeastOnce),
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let t = get(&f, &cookie, "/api/topics").json();
    assert_eq!(t["enforced"], true);
    let room = t["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["topic"] == "room/1")
        .unwrap()
        .clone();
    assert_eq!(room["listed"], true);
    assert_eq!(room["subscribers"], 1);
    assert!(t["topics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["topic"] == "sensors/#" && x["pattern"] == true));

    // Bad input: nothing changes.
    send(
        &f,
        &cookie,
        "POST",
        "/api/topics",
        Some(r#"{"topic":"a/#/b"}"#),
    )
    .expect_error(400);
    send(
        &f,
        &cookie,
        "POST",
        "/api/topics",
        Some(r#"{"topic":"room/1"}"#),
    )
    .expect_error(409);
    send(&f, &cookie, "POST", "/api/topics", Some("{not json")).expect_error(400);
    send(
        &f,
        &cookie,
        "POST",
        "/api/topics",
        Some(r#"{"topic":"x","extra":1}"#),
    )
    .expect_error(400);
    send(
        &f,
        &cookie,
        "DELETE",
        "/api/topics?topic=nothing/here",
        None,
    )
    .expect_error(404);
    send(&f, &cookie, "DELETE", "/api/topics", None).expect_error(400);
    send(&f, &cookie, "PUT", "/api/topics", None).expect_error(405);
    assert_eq!(f.broker.handle.topic_list().entries().len(), 2);

    let r = send(&f, &cookie, "DELETE", "/api/topics?topic=room%2F1", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let other = TestClient::connect_to(f.broker.addr, "adm-topics-2");
    assert_eq!(
        other.subscribe("room/1", QoS::AtLeastOnce),
        vec![SubscribeReasonCode::Failure]
    );
    assert!(!f.broker.handle.topic_list().contains("room/1"));
}

#[test]
fn history_recent_and_publish() {
    let f = AdminFixture::start(settings());
    let cookie = f.login();
    let sub = TestClient::connect_to(f.broker.addr, "adm-sub");
    sub.subscribe("t/#", QoS::ExactlyOnce);
    let publisher = TestClient::connect_to(f.broker.addr, "adm-pub");
    publisher.publish_acked("t/a", QoS::ExactlyOnce, false, "first");
    sub.expect_publish("t/a", b"first");
    publisher.publish_acked("t/a", QoS::AtLeastOnce, true, vec![0xff, 0x00, 0xfe]);
    sub.expect_publish("t/a", &[0xff, 0x00, 0xfe]);

    let r = send(
        &f,
        &cookie,
        "POST",
        "/api/publish",
        Some(r#"{"topic":"t/a","payload":"from admin","qos":1,"retain":false}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    sub.expect_publish("t/a", b"from admin");

    let h = get(&f, &cookie, "/api/history?topic=t%2Fa").json();
    let v = h["values"].as_array().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(
        (v[0]["payload"].as_str(), v[0]["encoding"].as_str()),
        (Some("from admin"), Some("utf8"))
    );
    assert_eq!(v[0]["publisher"], "$admin");
    assert_eq!(
        (v[1]["payload"].as_str(), v[1]["encoding"].as_str()),
        (Some("/wD+"), Some("base64"))
    );
    assert_eq!(
        (v[1]["qos"].as_u64(), v[1]["retain"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(v[2]["publisher"], "adm-pub");
    assert_eq!(v[2]["qos"], 2);
    assert!(v[2]["time"].as_str().unwrap().ends_with('Z'));

    let recent = get(&f, &cookie, "/api/recent").json();
    assert_eq!(recent[0]["topic"], "t/a");
    assert_eq!(recent[0]["messages"], 3);
    assert_eq!(recent[0]["last"]["payload"], "from admin");

    // Bad input: 4xx JSON, nothing published.
    get(&f, &cookie, "/api/history").expect_error(400);
    get(&f, &cookie, "/api/history?topic=t%2F%23").expect_error(400);
    send(
        &f,
        &cookie,
        "POST",
        "/api/publish",
        Some(r#"{"topic":"t/+","payload":"x"}"#),
    )
    .expect_error(400);
    send(
        &f,
        &cookie,
        "POST",
        "/api/publish",
        Some(r#"{"topic":"t/a","payload":"x","qos":3}"#),
    )
    .expect_error(400);
    send(
        &f,
        &cookie,
        "POST",
        "/api/publish",
        Some(r#"{"topic":"t/a""#),
    )
    .expect_error(400);
    let big = format!(
        r#"{{"topic":"t/a","payload":"{}"}}"#,
        "x".repeat(1024 * 1024 + 1)
    );
    send(&f, &cookie, "POST", "/api/publish", Some(&big)).expect_error(413);
    get(&f, &cookie, "/api/publish").expect_error(405);
    get(&f, &cookie, "/api/nothing").expect_error(404);
    // A marker after the refusals proves none of them was delivered.
    send(
        &f,
        &cookie,
        "POST",
        "/api/publish",
        Some(r#"{"topic":"t/a","payload":"marker"}"#),
    );
    sub.expect_publish("t/a", b"marker");
    assert_eq!(
        get(&f, &cookie, "/api/history?topic=t%2Fa").json()["values"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn users_are_added_changed_and_deleted() {
    let dir = TempDir::new("admin-users");
    let f = AdminFixture::start(Settings {
        password_file: Some(dir.path().join("passwd")),
        ..settings()
    });
    let cookie = f.login();
    let r = send(
        &f,
        &cookie,
        "POST",
        "/api/users",
        Some(r#"{"username":"ann@example.com","password":"pw1"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["created"], true);
    let users = get(&f, &cookie, "/api/users").json();
    assert_eq!(users["users"][0]["username"], "ann@example.com");
    assert!(
        !users.to_string().contains("$2"),
        "no hash leaves the server: {users}"
    );
    // The persist thread writes the file asynchronously.
    wait_until("the password file is written", || {
        std::fs::read_to_string(dir.path().join("passwd"))
            .is_ok_and(|s| s.contains("ann@example.com"))
    });
    let mut o = options(f.broker.addr, "adm-ann");
    o.set_credentials("ann@example.com", "pw1");
    drop(TestClient::connect(o));

    let r = send(
        &f,
        &cookie,
        "POST",
        "/api/users",
        Some(r#"{"username":"ann@example.com","password":"pw2"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["created"], false);
    let mut o = options(f.broker.addr, "adm-ann2");
    o.set_credentials("ann@example.com", "pw2");
    drop(TestClient::connect(o));

    send(
        &f,
        &cookie,
        "POST",
        "/api/users",
        Some(r#"{"username":"","password":"x"}"#),
    )
    .expect_error(400);
    send(
        &f,
        &cookie,
        "POST",
        "/api/users",
        Some(r#"{"username":"bob","password":""}"#),
    )
    .expect_error(400);
    send(&f, &cookie, "DELETE", "/api/users/nobody", None).expect_error(404);
    assert_eq!(f.broker.handle.user_names(), ["ann@example.com"]);

    let r = send(&f, &cookie, "DELETE", "/api/users/ann%40example.com", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(f.broker.handle.user_names().is_empty());
}

#[test]
fn stats_and_events() {
    let f = AdminFixture::start(enforced(&["ok/#"]));
    let cookie = f.login();
    let a = TestClient::connect_to(f.broker.addr, "adm-ev-a");
    assert_eq!(
        a.subscribe("missing/topic", QoS::AtMostOnce),
        vec![SubscribeReasonCode::Failure]
    );
    a.subscribe("ok/x", QoS::AtLeastOnce);
    let b = TestClient::connect_to(f.broker.addr, "adm-ev-b");
    b.client.disconnect().unwrap();
    wait_until("b is gone", || {
        client_info(&f.broker.handle, "adm-ev-b").is_none()
    });

    let s = get(&f, &cookie, "/api/stats").json();
    assert_eq!(s["connections"], 1);
    assert_eq!(s["subscriptions"], 1);
    assert_eq!(s["subscriptions_refused"], 1);
    assert_eq!(s["shards"].as_array().unwrap().len(), test_threads());
    assert!(s["messages_in_per_sec"].is_number());

    let ev = get(&f, &cookie, "/api/events?since=0").json();
    let events = ev["events"].as_array().unwrap();
    let has = |pred: &dyn Fn(&serde_json::Value) -> bool| events.iter().any(pred);
    assert!(has(
        &|e| e["type"] == "connected" && e["client_id"] == "adm-ev-a"
    ));
    assert!(has(&|e| e["type"] == "subscription_refused"
        && e["filter"] == "missing/topic"
        && e["reason"].as_str().is_some_and(|r| !r.is_empty())));
    assert!(has(
        &|e| e["type"] == "subscription_accepted" && e["filter"] == "ok/x"
    ));
    assert!(has(&|e| e["type"] == "disconnected"
        && e["client_id"] == "adm-ev-b"
        && e["disconnect"] == "graceful"));
    let last = ev["last_seq"].as_u64().unwrap();

    // A long poll returns as soon as the next event happens.
    let http_addr = f.http;
    let c2 = cookie.clone();
    let poll = std::thread::spawn(move || {
        http(
            http_addr,
            "GET",
            &format!("/api/events?since={last}&wait=20"),
            &[("Cookie", &c2)],
            None,
        )
    });
    let start = std::time::Instant::now();
    // If the event comes before the poll is registered, it is in the poll's backlog: either way it returns.
    send(
        &f,
        &cookie,
        "POST",
        "/api/topics",
        Some(r#"{"topic":"new/t"}"#),
    );
    let r = poll.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the poll waited its full time"
    );
    let e = r.json();
    assert_eq!(e["events"][0]["type"], "topic_created");
    assert_eq!(e["events"][0]["topic"], "new/t");
    get(&f, &cookie, "/api/events?since=x").expect_error(400);
    get(&f, &cookie, "/api/events?wait=99").expect_error(400);

    // Polls are capped so they cannot take every server thread: the one beyond the cap gets 503.
    let since = e["last_seq"].as_u64().unwrap();
    let holders: Vec<_> = (0..shardmq::admin_http::routes::MAX_EVENT_POLLS)
        .map(|_| {
            let c = cookie.clone();
            std::thread::spawn(move || {
                http(
                    http_addr,
                    "GET",
                    &format!("/api/events?since={since}&wait=20"),
                    &[("Cookie", &c)],
                    None,
                )
            })
        })
        .collect();
    wait_until("every holder is waiting", || {
        get(&f, &cookie, "/api/stats").json()["event_polls"]
            == shardmq::admin_http::routes::MAX_EVENT_POLLS
    });
    get(&f, &cookie, &format!("/api/events?since={since}&wait=1")).expect_error(503);
    // A request that does not wait is still served.
    assert_eq!(get(&f, &cookie, "/api/events?since=0").status, 200);
    send(
        &f,
        &cookie,
        "POST",
        "/api/topics",
        Some(r#"{"topic":"release/polls"}"#),
    );
    for h in holders {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["events"][0]["topic"], "release/polls");
    }
}
