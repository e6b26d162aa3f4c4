//! Plumbing for `tests/faults_garbage.rs` (issue #6, "Faults", item 2):
//! a master with node identities listening on every transport (TCP,
//! WebSocket, ZeroMQ requests and the ZeroMQ PUB port), with the good
//! peers the tests keep checking (one accepted minion and one admin client
//! per transport), and raw TCP attackers that send garbage, or just enough
//! of a protocol to reach the layer under attack, then watch how the
//! master ends their connection.
use crate::support::attack::{base_config, guard, Pki, T};
use bytes::Bytes;
use sealrpc::channel::{Client, Router};
use sealrpc::master::{Master, MasterHandle, MasterOptions};
use sealrpc::minion::{Minion, MinionOptions};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

type Task = JoinHandle<Result<(), sealrpc::Error>>;

/// A port the master listens on, as an attacker reaches it: TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The TCP request port (length-prefixed frames).
    Tcp,
    /// The WebSocket endpoint (HTTP upgrade, then binary messages).
    Ws,
    /// The ZeroMQ request port (a ROUTER: ZMTP 3).
    Zmq,
    /// The ZeroMQ publish port (a PUB: ZMTP 3, minions subscribe).
    ZmqPub,
}

impl Port {
    pub const ALL: [Port; 4] = [Port::Tcp, Port::Ws, Port::Zmq, Port::ZmqPub];

    pub fn name(self) -> &'static str {
        match self {
            Port::Tcp => "tcp",
            Port::Ws => "ws",
            Port::Zmq => "zmq",
            Port::ZmqPub => "zmq-pub",
        }
    }
}

/// A running master on every transport with its good peers.
pub struct Target {
    pub pki: Pki,
    pub handle: MasterHandle,
    /// `tcp://…`, `ws://…/sealrpc`, `zmq://…`, in that order.
    pub urls: Vec<String>,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub ws_path: String,
    pub zmq: SocketAddr,
    pub zmq_pub: SocketAddr,
    admins: Vec<(String, Client)>,
    stop: oneshot::Sender<()>,
    task: Task,
    minions: Vec<(oneshot::Sender<()>, Task)>,
}

/// The minions' ids, one per transport, sorted.
pub const MINIONS: [&str; 3] = ["m-tcp", "m-ws", "m-zmq"];

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let hostport = rest.split('/').next().expect("host:port");
    hostport.parse().expect("a loopback address")
}

impl Target {
    /// A master with node identities on loopback, listening on TCP,
    /// WebSocket and ZeroMQ (and so a ZeroMQ PUB port), whose handshakes
    /// may take `handshake_timeout`; one accepted minion per transport
    /// (registered and, on ZeroMQ, subscribed) and one admin client per
    /// transport (connected).
    pub async fn start(name: &str, handshake_timeout: Duration) -> Target {
        let pki = Pki::new(name);
        let mut cfg = base_config();
        cfg.handshake_timeout = handshake_timeout;
        let listen = [
            "tcp://127.0.0.1:0",
            "ws://127.0.0.1:0/sealrpc",
            "zmq://127.0.0.1:0",
        ];
        let opts: MasterOptions = pki.options(false, &[]);
        let master = Master::bind(&listen, builtins(), cfg, opts)
            .await
            .expect("bind the master");
        let urls = master.local_urls().expect("urls");
        let zmq_pub = master.publish_addr().expect("a PUB port");
        let handle = master.handle();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(master.run(async {
            let _ = rx.await;
        }));
        let url = |scheme: &str| {
            urls.iter()
                .find(|u| u.starts_with(&format!("{scheme}://")))
                .cloned()
                .unwrap_or_else(|| panic!("no {scheme} listener in {urls:?}"))
        };
        let (tcp_url, ws_url, zmq_url) = (url("tcp"), url("ws"), url("zmq"));
        let ws_path = ws_url
            .trim_start_matches("ws://")
            .split_once('/')
            .map(|(_, p)| format!("/{p}"))
            .expect("a path");
        let fp = pki.master_fingerprint();
        let mut minions = Vec::new();
        for (id, url) in MINIONS.iter().zip([&tcp_url, &ws_url, &zmq_url]) {
            let m = pki.minion(id);
            pki.accept(&m);
            let minion = Minion::new(
                url,
                id,
                builtins(),
                m.config(Some(fp.clone())),
                MinionOptions::default(),
            )
            .expect("minion");
            let mut ready = minion.ready();
            let (stop, rx) = oneshot::channel::<()>();
            let task = tokio::spawn(minion.run(async {
                let _ = rx.await;
            }));
            guard("minion ready", ready.wait_for(|r| *r))
                .await
                .expect("ready");
            minions.push((stop, task));
        }
        guard("three minions", handle.wait_for_minions(MINIONS.len())).await;
        let mut admins = Vec::new();
        for url in [&tcp_url, &ws_url, &zmq_url] {
            let client = guard("admin connect", Client::connect(url, pki.admin()))
                .await
                .expect("admin connect");
            admins.push((url.clone(), client));
        }
        Target {
            pki,
            handle,
            tcp: addr_of(&tcp_url),
            ws: addr_of(&ws_url),
            ws_path,
            zmq: addr_of(&zmq_url),
            zmq_pub,
            urls: vec![tcp_url, ws_url, zmq_url],
            admins,
            stop,
            task,
            minions,
        }
    }

    pub fn addr(&self, port: Port) -> SocketAddr {
        match port {
            Port::Tcp => self.tcp,
            Port::Ws => self.ws,
            Port::Zmq => self.zmq,
            Port::ZmqPub => self.zmq_pub,
        }
    }

    /// Every good peer is served, with correct replies: each admin client
    /// (connected before the attack) echoes `tag` on its transport, a new
    /// admin connection on each transport is accepted, handshaken and
    /// served, and a job published to every minion (ZeroMQ's through the
    /// PUB port) comes back from all three with `tag`.
    pub async fn served(&self, tag: &str) {
        for (url, client) in &self.admins {
            let got: String = guard("admin call", client.call_value("test.echo", &[tag]))
                .await
                .unwrap_or_else(|e| panic!("admin on {url}: {e}"));
            assert_eq!(got, tag, "admin on {url}");
        }
        for url in &self.urls {
            let fresh = guard(
                "new admin connection",
                Client::connect(url, self.pki.admin()),
            )
            .await
            .unwrap_or_else(|e| panic!("new admin connection to {url}: {e}"));
            let got: String = guard("new admin call", fresh.call_value("test.echo", &[tag]))
                .await
                .unwrap_or_else(|e| panic!("new admin on {url}: {e}"));
            assert_eq!(got, tag, "new admin on {url}");
        }
        let body = Bytes::from(rmp_serde::to_vec(&[tag]).expect("encode"));
        let report = guard("publish", self.handle.publish("*", "test.echo", body, T))
            .await
            .expect("publish");
        assert!(report.missing.is_empty(), "{report:?}");
        assert_eq!(
            report.returns.keys().collect::<Vec<_>>(),
            MINIONS,
            "{report:?}"
        );
        for (id, r) in &report.returns {
            assert!(r.ok, "{id}: {report:?}");
            let got: String = rmp_serde::from_slice(&r.body).expect("decode");
            assert_eq!(got, tag, "{id}");
        }
    }

    /// Stops every minion, then the master.
    pub async fn stop(self) {
        drop(self.admins);
        for (stop, task) in self.minions {
            let _ = stop.send(());
            guard("minion stop", task)
                .await
                .expect("minion task")
                .expect("minion result");
        }
        let _ = self.stop.send(());
        guard("master stop", self.task)
            .await
            .expect("master task")
            .expect("master result");
    }
}

fn builtins() -> Router {
    sealrpc::builtin::register(Router::new())
}

/// How the master ended a bad peer's connection.
#[derive(Debug)]
pub struct Ending {
    /// From the start of the attacker's connect to the end it saw.
    pub after: Duration,
    /// Everything the master sent before the end.
    pub received: Vec<u8>,
    /// The end was a reset (an error) rather than a clean end of stream.
    pub reset: bool,
}

/// What a bad peer's watcher has seen so far.
#[derive(Default)]
struct Seen {
    received: Vec<u8>,
    /// When the connection ended (from the connect), and whether by a reset.
    end: Option<(Duration, bool)>,
}

/// One attacker's raw TCP connection to one port. A task of its own reads
/// it from the connect on, so the end is timed when it happens, whatever
/// the test is doing then.
pub struct Bad {
    pub what: String,
    opened: Instant,
    write: Option<OwnedWriteHalf>,
    trickle: Option<JoinHandle<()>>,
    seen: watch::Receiver<Seen>,
    watcher: JoinHandle<()>,
}

impl Drop for Bad {
    fn drop(&mut self) {
        if let Some(t) = self.trickle.take() {
            t.abort();
        }
        self.watcher.abort();
    }
}

async fn watch_reads(mut read: OwnedReadHalf, opened: Instant, seen: watch::Sender<Seen>) {
    // Small: the memory test counts the attackers' memory too.
    let mut buf = [0u8; 2048];
    let reset = loop {
        match read.read(&mut buf).await {
            Ok(0) => break false,
            Ok(n) => seen.send_modify(|s| s.received.extend_from_slice(&buf[..n])),
            Err(_) => break true,
        }
    };
    let after = opened.elapsed();
    seen.send_modify(|s| s.end = Some((after, reset)));
}

impl Bad {
    /// Connects (TCP only, nothing sent).
    pub async fn open(what: impl Into<String>, addr: SocketAddr) -> Bad {
        let what = what.into();
        // Before the connect: the master cannot have accepted (and started
        // any timer on) the connection earlier.
        let opened = Instant::now();
        let stream = guard("attacker connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
        let (read, write) = stream.into_split();
        let (tx, seen) = watch::channel(Seen::default());
        Bad {
            what,
            opened,
            write: Some(write),
            trickle: None,
            seen,
            watcher: tokio::spawn(watch_reads(read, opened, tx)),
        }
    }

    /// Sends `bytes` at once. The master may have closed already: a failed
    /// write shows in [`Bad::ending`].
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Some(w) = self.write.as_mut() {
            let _ = w.write_all(bytes).await;
        }
    }

    /// Waits until `needle` has arrived (say, the end of an HTTP response);
    /// returns everything received so far.
    pub async fn read_through(&mut self, needle: &[u8]) -> Vec<u8> {
        let what = self.what.clone();
        let seen = guard(
            &format!("{what}: waiting for {needle:?}"),
            self.seen
                .wait_for(|s| find(&s.received, needle).is_some() || s.end.is_some()),
        )
        .await
        .expect("watcher");
        assert!(
            find(&seen.received, needle).is_some(),
            "{what}: the end before {needle:?}: {:?}",
            String::from_utf8_lossy(&seen.received)
        );
        seen.received.clone()
    }

    /// Sends `bytes` one byte every `pause`, from a task of its own, and
    /// then sends nothing more while the connection lasts.
    pub fn trickle(&mut self, bytes: Vec<u8>, pause: Duration) {
        let Some(mut w) = self.write.take() else {
            return;
        };
        self.trickle = Some(tokio::spawn(async move {
            for b in bytes {
                if w.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
            // Never finishing: hold the write side open.
            std::future::pending::<()>().await;
        }));
    }

    /// Whether the master still holds the connection (as far as has
    /// arrived: a close already sent may still be on its way).
    pub fn is_open(&self) -> bool {
        self.seen.borrow().end.is_none()
    }

    /// How the master ended the connection, failing the test if it did
    /// not within `within` of the connect.
    pub async fn ending(mut self, within: Duration) -> Ending {
        let deadline = tokio::time::Instant::from_std(self.opened + within);
        let ended = self.seen.wait_for(|s| s.end.is_some());
        if tokio::time::timeout_at(deadline, ended).await.is_err() {
            panic!(
                "{}: still open {:?} after the connect (received {} bytes)",
                self.what,
                self.opened.elapsed(),
                self.seen.borrow().received.len()
            );
        }
        let seen = self.seen.borrow();
        let (after, reset) = seen.end.expect("ended");
        Ending {
            after,
            received: seen.received.clone(),
            reset,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------ the garbage

/// `n` pseudo-random bytes (xorshift64*, fixed seed: the same every run).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// A plain HTTP request, as a browser or a scanner sends it.
pub fn http_request(addr: SocketAddr) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

/// A TLS 1.3 ClientHello record (SNI, supported versions and groups, an
/// X25519 key share, signature algorithms), as a TLS client opens with.
pub fn tls_client_hello() -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
        out.extend(kind.to_be_bytes());
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(body);
    }
    let mut exts = Vec::new();
    let host = b"master.example";
    let mut sni = Vec::new();
    sni.extend(((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend((host.len() as u16).to_be_bytes());
    sni.extend(host);
    ext(&mut exts, 0x0000, &sni);
    ext(&mut exts, 0x002b, &[2, 0x03, 0x04]);
    ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]);
    let mut share = vec![0, 36, 0x00, 0x1d, 0, 32];
    share.extend(random_bytes(32, 7));
    ext(&mut exts, 0x0033, &share);
    ext(
        &mut exts,
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    );
    let mut hello = vec![0x03, 0x03];
    hello.extend(random_bytes(32, 11));
    hello.push(32);
    hello.extend(random_bytes(32, 13));
    hello.extend([0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]);
    hello.extend([1, 0]);
    hello.extend((exts.len() as u16).to_be_bytes());
    hello.extend(exts);
    let mut handshake = vec![0x01];
    handshake.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// A valid sealrpc handshake frame 1 (Noise `-> e`), unframed.
pub fn noise_frame1() -> Vec<u8> {
    sealrpc::wire::handshake::Initiator::start(&[7; 32])
        .expect("start")
        .1
}

/// `payload` as a TCP-transport frame (u32 big-endian length first).
pub fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend(payload);
    f
}

/// The HTTP request that upgrades to a WebSocket on `path`.
pub fn ws_upgrade(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// The header of a masked binary WebSocket frame (FIN) announcing `len`
/// payload bytes, with its mask.
pub fn ws_header(len: u64) -> (Vec<u8>, [u8; 4]) {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut h = vec![0x82];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend((len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend(len.to_be_bytes());
    }
    h.extend(mask);
    (h, mask)
}

/// `payload` as one masked binary WebSocket frame.
pub fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let (mut f, mask) = ws_header(payload.len() as u64);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A ZMTP 3.0 greeting, NULL mechanism, as a client.
pub fn zmtp_greeting() -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// A ZMTP READY command for `socket_type` (`DEALER`, `SUB`).
pub fn zmtp_ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend(b"READY");
    body.push(11);
    body.extend(b"Socket-Type");
    body.extend((socket_type.len() as u32).to_be_bytes());
    body.extend(socket_type.as_bytes());
    let mut f = vec![0x04, body.len() as u8];
    f.extend(body);
    f
}

/// The header of a long ZMTP frame announcing `len` bytes (a command or a
/// message's last frame).
pub fn zmtp_long_header(command: bool, len: u64) -> Vec<u8> {
    let mut h = vec![if command { 0x06 } else { 0x02 }];
    h.extend(len.to_be_bytes());
    h
}

/// `payload` as a one-frame ZMTP message.
pub fn zmtp_message(payload: &[u8]) -> Vec<u8> {
    let mut f = if payload.len() < 256 {
        vec![0x00, payload.len() as u8]
    } else {
        zmtp_long_header(false, payload.len() as u64)
    };
    f.extend(payload);
    f
}

/// The process's resident set size, in KiB (`VmRSS` in /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
