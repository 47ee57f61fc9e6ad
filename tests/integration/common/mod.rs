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
