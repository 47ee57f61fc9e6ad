//! Test harness: a real broker on an ephemeral loopback port, real rumqttc clients, and a raw-socket
//! transcript helper for exact bytes. Every wait is bounded by a deadline on an event, never a bare sleep.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};
use shardmq::{Broker, BrokerHandle, Settings};

/// Generous bound for events that should arrive in milliseconds; only reached when a test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// Worker threads for test brokers: 3 by default so that connections, sessions and topics spread over
/// several workers and every cross-worker path runs; CI also runs the suite with SHARDMQ_TEST_THREADS=1.
pub fn test_threads() -> usize {
    std::env::var("SHARDMQ_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

pub fn settings() -> Settings {
    let level = std::env::var("SHARDMQ_TEST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(log::LevelFilter::Off);
    shardmq::logging::init(level);
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: test_threads(),
        auth_threads: 1,
        ..Settings::default()
    }
}

pub struct TestBroker {
    broker: Option<Broker>,
    pub addr: SocketAddr,
    pub handle: BrokerHandle,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker::with(settings())
    }

    pub fn with(settings: Settings) -> TestBroker {
        let broker = Broker::start(settings).expect("broker starts");
        TestBroker {
            addr: broker.local_addr(),
            handle: broker.handle(),
            broker: Some(broker),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown();
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("shardmq-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `cond` holds, polling an observable (broker state), up to WAIT.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ----- rumqttc -------------------------------------------------------------------------------------

/// A rumqttc client whose event loop runs on its own thread, forwarding every event (or the error that
/// ended the connection) to a channel the test reads with deadlines.
pub struct TestClient {
    pub client: Client,
    events: Receiver<Result<Event, String>>,
}

pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o
}

impl TestClient {
    /// Connects and waits for a successful CONNACK.
    pub fn connect(opts: MqttOptions) -> TestClient {
        let c = TestClient::start(opts);
        match c.next_packet() {
            Packet::ConnAck(ack) => assert_eq!(
                ack.code,
                rumqttc::ConnectReturnCode::Success,
                "CONNACK {ack:?}"
            ),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        c
    }

    pub fn connect_to(addr: SocketAddr, id: &str) -> TestClient {
        TestClient::connect(options(addr, id))
    }

    /// Starts the client without waiting for anything.
    pub fn start(opts: MqttOptions) -> TestClient {
        let (client, connection) = Client::new(opts, 1000);
        let (tx, events) = crossbeam_channel::unbounded();
        std::thread::spawn(move || pump(connection, tx));
        TestClient { client, events }
    }

    /// The next incoming packet (outgoing notifications are skipped).
    pub fn next_packet(&self) -> Packet {
        self.try_next_packet(WAIT)
            .unwrap_or_else(|e| panic!("no packet: {e}"))
    }

    pub fn try_next_packet(&self, timeout: Duration) -> Result<Packet, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.events.recv_deadline(deadline) {
                Ok(Ok(Event::Incoming(p))) => return Ok(p),
                Ok(Ok(Event::Outgoing(_))) => continue,
                Ok(Err(e)) => return Err(format!("connection ended: {e}")),
                Err(_) => return Err("timed out".into()),
            }
        }
    }

    /// The next PUBLISH, skipping acks and other packets.
    pub fn next_publish(&self) -> rumqttc::Publish {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_next_packet(left) {
                Ok(Packet::Publish(p)) => return p,
                Ok(_) => continue,
                Err(e) => panic!("expected a PUBLISH: {e}"),
            }
        }
    }

    /// Subscribes and waits for the SUBACK, returning its return codes.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .expect("subscribe request queued");
        loop {
            match self.next_packet() {
                Packet::SubAck(ack) => return ack.return_codes,
                Packet::Publish(p) => panic!("unexpected PUBLISH before SUBACK: {p:?}"),
                _ => continue,
            }
        }
    }

    pub fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, qos, retain, payload.into())
            .expect("publish request queued");
    }

    /// Asserts that no PUBLISH arrives within `quiet` (used after a positive marker message has shown the
    /// path is live, so the absence is meaningful).
    pub fn assert_no_publish(&self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        loop {
            match self.events.recv_deadline(deadline) {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => panic!("unexpected PUBLISH {p:?}"),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Waits for the connection to end with an error (closed by the broker).
    pub fn expect_closed(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.events.recv_deadline(deadline) {
                Ok(Err(e)) => return e,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the connection was not closed"),
            }
        }
    }

    pub fn disconnect(self) {
        let _ = self.client.disconnect();
        let deadline = Instant::now() + WAIT;
        // Wait until the event loop reports the end, so the DISCONNECT has been written.
        while let Ok(ev) = self.events.recv_deadline(deadline) {
            if ev.is_err() {
                break;
            }
        }
    }
}

fn pump(mut connection: Connection, tx: crossbeam_channel::Sender<Result<Event, String>>) {
    for ev in connection.iter() {
        let end = ev.is_err();
        if tx.send(ev.map_err(|e| e.to_string())).is_err() || end {
            // Stop after the first error: rumqttc would otherwise reconnect.
            return;
        }
    }
}

// ----- raw bytes -----------------------------------------------------------------------------------

/// A raw TCP connection for exact-byte transcripts.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads exactly `expected.len()` bytes and compares.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact(expected.len());
        assert_eq!(got, expected, "expected {expected:02x?}, got {got:02x?}");
    }

    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = vec![0; n];
        self.stream
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
        buf
    }

    /// Reads one whole packet (fixed header + body).
    pub fn read_packet(&mut self) -> Vec<u8> {
        let mut out = self.read_exact(1);
        let mut len = 0usize;
        let mut mult = 1usize;
        loop {
            let b = self.read_exact(1)[0];
            out.push(b);
            len += (b & 0x7f) as usize * mult;
            mult *= 128;
            if b & 0x80 == 0 {
                break;
            }
        }
        out.extend(self.read_exact(len));
        out
    }

    /// Asserts the broker closes the connection (EOF or reset) within WAIT, with no further bytes.
    pub fn expect_closed(&mut self) {
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected close, got bytes {:02x?}", &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected close, got error {e}"),
        }
    }

    /// CONNECT (3.1.1) with the given client id, clean session and keep alive, then expects CONNACK 0.
    pub fn mqtt_connect(
        addr: SocketAddr,
        client_id: &str,
        clean: bool,
        keep_alive: u16,
    ) -> (Raw, bool) {
        let mut raw = Raw::connect(addr);
        raw.send(&connect_packet(client_id, clean, keep_alive));
        let ack = raw.read_exact(4);
        assert_eq!(&ack[..2], &[0x20, 0x02]);
        assert_eq!(ack[3], 0, "CONNACK code");
        (raw, ack[2] == 1)
    }
}

/// An MQTT 3.1.1 CONNECT packet without will or credentials.
pub fn connect_packet(client_id: &str, clean: bool, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        if clean { 0x02 } else { 0 },
    ];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10];
    encode_len(body.len(), &mut p);
    p.extend(body);
    p
}

pub fn encode_len(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}

/// A PUBLISH packet.
pub fn publish_packet(
    topic: &str,
    qos: u8,
    pid: u16,
    dup: bool,
    retain: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut p = vec![0x30 | (qos << 1) | if dup { 0x08 } else { 0 } | u8::from(retain)];
    encode_len(body.len(), &mut p);
    p.extend(body);
    p
}

/// A SUBSCRIBE packet.
pub fn subscribe_packet(pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    for (f, q) in filters {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f.as_bytes());
        body.push(*q);
    }
    let mut p = vec![0x82];
    encode_len(body.len(), &mut p);
    p.extend(body);
    p
}

/// An UNSUBSCRIBE packet.
pub fn unsubscribe_packet(pid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    for f in filters {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f.as_bytes());
    }
    let mut p = vec![0xA2];
    encode_len(body.len(), &mut p);
    p.extend(body);
    p
}

/// A CONNECT with every field under the test's control (protocol name and level, flags, will).
#[derive(Clone, Debug)]
pub struct ConnectSpec<'a> {
    pub protocol: &'a [u8],
    pub level: u8,
    pub client_id: &'a str,
    pub clean: bool,
    pub keep_alive: u16,
    /// (topic, payload, QoS, retain)
    pub will: Option<(&'a str, &'a [u8], u8, bool)>,
    /// Sets the reserved bit 0 of the connect flags, which [MQTT-3.1.2-3] forbids.
    pub reserved_flag: bool,
}

impl<'a> ConnectSpec<'a> {
    pub fn new(client_id: &'a str) -> ConnectSpec<'a> {
        ConnectSpec {
            protocol: b"MQTT",
            level: 4,
            client_id,
            clean: true,
            keep_alive: 0,
            will: None,
            reserved_flag: false,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut flags = if self.clean { 0x02 } else { 0 };
        if self.reserved_flag {
            flags |= 0x01;
        }
        if let Some((_, _, qos, retain)) = self.will {
            flags |= 0x04 | (qos << 3) | if retain { 0x20 } else { 0 };
        }
        let mut body = (self.protocol.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(self.protocol);
        body.push(self.level);
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        body.extend_from_slice(&(self.client_id.len() as u16).to_be_bytes());
        body.extend_from_slice(self.client_id.as_bytes());
        if let Some((topic, payload, _, _)) = self.will {
            body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            body.extend_from_slice(topic.as_bytes());
            body.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            body.extend_from_slice(payload);
        }
        let mut p = vec![0x10];
        encode_len(body.len(), &mut p);
        p.extend(body);
        p
    }

    /// Connects, expects CONNACK 0 and returns the connection and the session-present flag.
    pub fn connect(&self, addr: SocketAddr) -> (Raw, bool) {
        let mut raw = Raw::connect(addr);
        raw.send(&self.bytes());
        let ack = raw.read_exact(4);
        assert_eq!(&ack[..2], &[0x20, 0x02], "CONNACK header");
        assert_eq!(ack[3], 0, "CONNACK return code");
        assert!(ack[2] <= 1, "CONNACK flags {:#04x}", ack[2]);
        (raw, ack[2] == 1)
    }
}

/// A PUBLISH as read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawPublish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pid: Option<u16>,
    pub payload: Vec<u8>,
}

/// Parses a whole PUBLISH packet (as returned by [`Raw::read_packet`]); panics on anything else.
pub fn parse_publish(p: &[u8]) -> RawPublish {
    assert_eq!(p[0] >> 4, 3, "expected a PUBLISH, got {p:02x?}");
    let mut i = 1;
    while p[i] & 0x80 != 0 {
        i += 1;
    }
    let body = &p[i + 1..];
    let qos = (p[0] >> 1) & 3;
    let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let topic = String::from_utf8(body[2..2 + tlen].to_vec()).expect("UTF-8 topic");
    let mut rest = &body[2 + tlen..];
    let pid = (qos > 0).then(|| {
        let id = u16::from_be_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        id
    });
    RawPublish {
        dup: p[0] & 0x08 != 0,
        qos,
        retain: p[0] & 1 != 0,
        topic,
        pid,
        payload: rest.to_vec(),
    }
}

impl Raw {
    /// Reads the next packet and parses it as a PUBLISH.
    pub fn read_publish(&mut self) -> RawPublish {
        let p = self.read_packet();
        parse_publish(&p)
    }

    /// Sends SUBSCRIBE and expects the SUBACK with exactly these return codes.
    pub fn subscribe(&mut self, pid: u16, filters: &[(&str, u8)], codes: &[u8]) {
        self.send(&subscribe_packet(pid, filters));
        let mut ack = vec![0x90, 2 + codes.len() as u8];
        ack.extend_from_slice(&pid.to_be_bytes());
        ack.extend_from_slice(codes);
        self.expect(&ack);
    }

    /// PINGREQ → PINGRESP, proving the connection is alive and served.
    pub fn ping(&mut self) {
        self.send(&[0xC0, 0x00]);
        self.expect(&[0xD0, 0x00]);
    }

    /// Writes, ignoring errors: for tests that feed bytes the broker may already have refused.
    pub fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Waits for the close (EOF or reset) up to `within` and returns how long it took; any bytes that
    /// arrive first fail the test.
    pub fn time_until_closed(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected close, got bytes {:02x?}", &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "expected close within {within:?}, got {e} after {:?}",
                start.elapsed()
            ),
        }
        start.elapsed()
    }

    /// Expects nothing to arrive for `quiet` (the connection neither sends nor closes).
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => panic!("the connection was closed"),
            Ok(n) => panic!("expected silence, got bytes {:02x?}", &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("expected silence, got error {e}"),
        }
    }
}

// ----- placement -----------------------------------------------------------------------------------

/// A client id `{prefix}-{i}` whose session lives on worker `worker` (of `workers`).
pub fn id_on_worker(prefix: &str, worker: usize, workers: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| shardmq::message::home_of(id, workers) == worker)
        .unwrap()
}

/// A topic `{prefix}/{i}` owned by partition `worker` (of `workers`).
pub fn topic_in_partition(prefix: &str, worker: usize, workers: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}/{i}"))
        .find(|t| shardmq::message::partition_of(t, workers) == worker)
        .unwrap()
}

// ----- rumqttc helpers -----------------------------------------------------------------------------

impl TestClient {
    /// Connects and returns the client with the CONNACK's session-present flag.
    pub fn connect_session(opts: MqttOptions) -> (TestClient, bool) {
        let c = TestClient::start(opts);
        match c.next_packet() {
            Packet::ConnAck(ack) => {
                assert_eq!(
                    ack.code,
                    rumqttc::ConnectReturnCode::Success,
                    "CONNACK {ack:?}"
                );
                (c, ack.session_present)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The next PUBLISH, checked for topic and payload; returned for further checks.
    pub fn expect_publish(&self, topic: &str, payload: &[u8]) -> rumqttc::Publish {
        let p = self.next_publish();
        assert_eq!(
            (p.topic.as_str(), &p.payload[..]),
            (topic, payload),
            "unexpected PUBLISH {p:?}"
        );
        p
    }
}

/// Proves the broker still serves: a fresh subscriber receives a fresh publish from a fresh publisher.
pub fn assert_broker_serves(addr: SocketAddr, tag: &str) {
    let sub = TestClient::connect_to(addr, &format!("{tag}-probe-sub"));
    sub.subscribe(&format!("probe/{tag}"), QoS::AtLeastOnce);
    let publisher = TestClient::connect_to(addr, &format!("{tag}-probe-pub"));
    publisher.publish(&format!("probe/{tag}"), QoS::AtLeastOnce, false, "alive");
    sub.expect_publish(&format!("probe/{tag}"), b"alive");
}

impl TestClient {
    /// Publishes at QoS 1 or 2 and waits for the PUBACK or PUBCOMP, so the broker has taken the message.
    pub fn publish_acked(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        assert_ne!(qos, QoS::AtMostOnce, "QoS 0 has no acknowledgement");
        self.publish(topic, qos, retain, payload);
        loop {
            match self.next_packet() {
                Packet::PubAck(_) if qos == QoS::AtLeastOnce => return,
                Packet::PubComp(_) if qos == QoS::ExactlyOnce => return,
                Packet::Publish(p) => {
                    panic!("unexpected PUBLISH while waiting for an acknowledgement: {p:?}")
                }
                _ => continue,
            }
        }
    }

    /// Unsubscribes and waits for the UNSUBACK.
    pub fn unsubscribe(&self, filter: &str) {
        self.client
            .unsubscribe(filter)
            .expect("unsubscribe request queued");
        loop {
            match self.next_packet() {
                Packet::UnsubAck(_) => return,
                Packet::Publish(p) => panic!("unexpected PUBLISH before UNSUBACK: {p:?}"),
                _ => continue,
            }
        }
    }
}

/// The broker's view of one client, if it has a session.
pub fn client_info(handle: &BrokerHandle, id: &str) -> Option<shardmq::shard::ClientInfo> {
    handle.clients().into_iter().find(|c| c.client_id == id)
}

/// A topic under `marker/` owned by the same partition as `topic`. A partition handles its messages in
/// order and sends each subscriber's copies down one channel, so once a marker published after a message
/// on `topic` has arrived, that message would have arrived before it: the marker proves absence.
pub fn marker_for(topic: &str, workers: usize) -> String {
    topic_in_partition(
        "marker",
        shardmq::message::partition_of(topic, workers),
        workers,
    )
}

// ----- credentials, wills and protocol levels (raw) -------------------------------------------------

/// A CONNECT packet with everything optional spelled out: protocol level 3 (MQIsdp) or 4 (MQTT),
/// credentials and a will (topic, payload, QoS, retain).
pub struct RawConnect<'a> {
    pub level: u8,
    pub client_id: &'a str,
    pub clean: bool,
    pub keep_alive: u16,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub will: Option<(&'a str, &'a [u8], u8, bool)>,
}

impl<'a> RawConnect<'a> {
    pub fn new(client_id: &'a str) -> RawConnect<'a> {
        RawConnect {
            level: 4,
            client_id,
            clean: true,
            keep_alive: 30,
            username: None,
            password: None,
            will: None,
        }
    }

    pub fn credentials(mut self, username: &'a str, password: &'a [u8]) -> Self {
        self.username = Some(username);
        self.password = Some(password);
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &[u8]) {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
        let mut body = Vec::new();
        string(&mut body, if self.level == 3 { b"MQIsdp" } else { b"MQTT" });
        body.push(self.level);
        let mut flags = if self.clean { 0x02 } else { 0 };
        if let Some((_, _, qos, retain)) = self.will {
            flags |= 0x04 | (qos << 3) | if retain { 0x20 } else { 0 };
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        string(&mut body, self.client_id.as_bytes());
        if let Some((topic, payload, _, _)) = self.will {
            string(&mut body, topic.as_bytes());
            string(&mut body, payload);
        }
        if let Some(u) = self.username {
            string(&mut body, u.as_bytes());
        }
        if let Some(p) = self.password {
            string(&mut body, p);
        }
        let mut p = vec![0x10];
        encode_len(body.len(), &mut p);
        p.extend(body);
        p
    }

    /// Connects, sends this CONNECT and returns the connection with the CONNACK return code (and session
    /// present flag).
    pub fn connect(&self, addr: SocketAddr) -> (Raw, u8, bool) {
        let mut raw = Raw::connect(addr);
        raw.send(&self.encode());
        let ack = raw.read_exact(4);
        assert_eq!(&ack[..2], &[0x20, 0x02], "CONNACK header");
        (raw, ack[3], ack[2] == 1)
    }
}

// ----- admin console over real HTTP ----------------------------------------------------------------

/// A broker with its admin console on ephemeral loopback ports, and one admin account.
pub struct AdminFixture {
    pub admin: Option<shardmq::admin_http::AdminServer>,
    pub http: SocketAddr,
    pub broker: TestBroker,
}

pub const ADMIN_USER: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "s3cret admin";

impl AdminFixture {
    pub fn start(mut settings: Settings) -> AdminFixture {
        settings.admin = shardmq::config::AdminSettings {
            enabled: true,
            listen: "127.0.0.1:0".parse().unwrap(),
            // Cost 4 keeps logins fast in debug builds.
            users: vec![(
                ADMIN_USER.to_string(),
                bcrypt::hash(ADMIN_PASSWORD, 4).unwrap(),
            )],
        };
        let admin_settings = settings.admin.clone();
        let broker = TestBroker::with(settings);
        let admin = shardmq::admin_http::AdminServer::start(broker.handle.clone(), &admin_settings)
            .expect("admin server starts");
        assert!(admin.generated_password().is_none());
        AdminFixture {
            http: admin.local_addr(),
            admin: Some(admin),
            broker,
        }
    }

    /// Logs in and returns the session cookie (`name=value`).
    pub fn login(&self) -> String {
        let r = http(
            self.http,
            "POST",
            "/api/login",
            &[CSRF],
            Some(&format!(
                r#"{{"username":"{ADMIN_USER}","password":"{ADMIN_PASSWORD}"}}"#
            )),
        );
        assert_eq!(r.status, 200, "login: {}", r.body);
        let set = r.header("set-cookie").expect("login sets a cookie");
        set.split(';').next().unwrap().trim().to_string()
    }
}

impl Drop for AdminFixture {
    fn drop(&mut self) {
        if let Some(a) = self.admin.take() {
            a.stop();
        }
    }
}

/// The header every state-changing admin request needs.
pub const CSRF: (&str, &str) = ("X-Requested-With", "shardmq");

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a 4xx with a JSON `error` message and returns the message.
    pub fn expect_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` in {}", self.body))
            .to_string()
    }
}

/// A minimal HTTP/1.1 client over std TcpStream: one request per connection (Connection: close),
/// Content-Length or chunked bodies.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    http_bytes(addr, method, path, headers, body.map(str::as_bytes))
}

pub fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect to the admin server");
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[..eol])
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}
