//! The seeds of the transport fuzz targets (`fuzz/seeds/tcp_frames/`,
//! `ws_frames/`, `zmq_frames/`) are real traffic: each committed stream is
//! replayed to a real listener of its transport (or, for what a WebSocket
//! server sends, parsed as RFC 6455 server frames), which must return the
//! frames it carried. With `SEALRPC_WRITE_SEEDS=1` the seeds are first
//! recaptured: real sealrpc handshake frames and the test-vector envelope
//! sent over real connections through a recording relay (`sealrpc::tap`).
//!
//! Each seed starts with the configuration bytes its fuzz target reads
//! (documented at the top of each `fuzz/fuzz_targets/*_frames.rs`).
use bytes::Bytes;
use sealrpc::tap::Tap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Turns "waits forever" into a failure; never reached when correct.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a client sends: handshake frames 1 and 3, then an envelope.
fn client_frames() -> Vec<Vec<u8>> {
    vec![
        read("handshake/msg1"),
        read("handshake/msg3"),
        read("envelope_open/vector"),
    ]
}

/// What a server sends: handshake frame 2, an envelope, an alert.
fn server_frames() -> Vec<Vec<u8>> {
    vec![
        read("handshake/msg2"),
        read("envelope_open/vector"),
        read("handshake/alert"),
    ]
}

fn write_seed(target: &str, name: &str, config: &[u8], stream: &[u8]) {
    let dir = root().join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut bytes = config.to_vec();
    bytes.extend_from_slice(stream);
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// A committed seed: its configuration bytes and its stream.
fn seed(target: &str, name: &str, config_len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = read(&format!("{target}/{name}"));
    assert!(bytes.len() < 2048, "{target}/{name}: keep seeds small");
    let stream = bytes.split_off(config_len);
    (bytes, stream)
}

fn rewrite() -> bool {
    std::env::var_os("SEALRPC_WRITE_SEEDS").is_some()
}

async fn guarded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: hang guard"))
}

/// Writes `stream` to a new connection to `addr`, leaves it open, and
/// returns it (the caller drops it when done).
async fn replay(addr: std::net::SocketAddr, stream: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(stream).await.expect("replay");
    tcp
}

// ---------------------------------------------------------------- tcp

/// `tcp_frames` seed configuration: `[config, seed_lo, seed_hi]`; config
/// bits 0-2 index the frame limit (7: 4096 bytes, 4: 64), 3-4 the read
/// buffer (3: 8 KiB, 0: none), 5-7 the chunking (0 whole, 1 bytes, 2+
/// random).
const TCP_SEEDS: [(&str, [u8; 3]); 4] = [
    ("session", [0x1f, 0, 0]),
    ("session_chunked", [0x47, 0x34, 0x12]),
    ("too_large", [0x24, 0, 0]),
    ("cut", [0x1f, 0, 0]),
];

async fn capture_tcp() -> Vec<u8> {
    let cfg = sealrpc_tcp::TcpConfig::default();
    let listener = sealrpc_tcp::Listener::bind("127.0.0.1:0", cfg)
        .await
        .expect("bind");
    let tap = Tap::start(listener.local_addr().expect("addr"))
        .await
        .expect("tap");
    let (_cr, mut cw) = sealrpc_tcp::connect(tap.addr(), cfg)
        .await
        .expect("connect");
    let (mut sr, _sw, _) = listener.accept().await.expect("accept");
    for f in client_frames() {
        cw.send(&f).await.expect("send");
    }
    cw.shutdown().await.expect("shutdown");
    while sr.recv().await.expect("recv").is_some() {}
    tap.to_server()
}

#[tokio::test]
async fn tcp_frames_seeds_are_real_traffic() {
    if rewrite() {
        let stream = guarded("capture", capture_tcp()).await;
        let frames = client_frames();
        let cut = stream.len() - frames[2].len() / 2;
        for (name, config) in TCP_SEEDS {
            let bytes = match name {
                "too_large" => &stream[4 + frames[0].len() + 4 + frames[1].len()..],
                "cut" => &stream[..cut],
                _ => &stream[..],
            };
            write_seed("tcp_frames", name, &config, bytes);
        }
    }
    let cfg = sealrpc_tcp::TcpConfig::default();
    let listener = sealrpc_tcp::Listener::bind("127.0.0.1:0", cfg)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    for (name, config) in TCP_SEEDS {
        let (got_config, stream) = seed("tcp_frames", name, 3);
        assert_eq!(got_config, config, "{name}");
        let mut tcp = replay(addr, &stream).await;
        tcp.shutdown().await.expect("FIN");
        let (mut r, _w, _) = listener.accept().await.expect("accept");
        let mut frames = Vec::new();
        let end = loop {
            match guarded(name, r.recv()).await {
                Ok(Some(f)) => frames.push(f.to_vec()),
                end => break end,
            }
        };
        let all = client_frames();
        match name {
            "too_large" => {
                // One envelope: over the 64-byte limit the seed selects.
                assert_eq!(frames, all[2..]);
                assert!(all[2].len() > 64);
            }
            "cut" => {
                assert_eq!(frames, all[..2]);
                assert!(matches!(end, Err(sealrpc_tcp::FrameError::UnexpectedEof)));
                continue;
            }
            _ => assert_eq!(frames, all, "{name}"),
        }
        assert!(matches!(end, Ok(None)), "{name}: {end:?}");
    }
}

// ---------------------------------------------------------------- ws

/// The upgrade request `ws_frames` puts before the stream in roles 0 and
/// 3: a real client's request (tokio-tungstenite's) with a fixed key.
const WS_REQUEST: &[u8] = b"GET /sealrpc HTTP/1.1\r\n\
Host: 127.0.0.1:4506\r\n\
Connection: Upgrade\r\n\
Upgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// `ws_frames` seed configuration: `[config]`; bits 0-1 the role (0 server
/// after `WS_REQUEST`, 1 server from the raw bytes, 2 client), 2-3 the
/// frame limit (3: 1024 bytes, 0: 16), 4-5 the read buffer (2: 1024
/// bytes), 6-7 how writes are cut (0 whole, 2 small).
const WS_SEEDS: [(&str, u8); 5] = [
    ("client_session", 0x2c),
    ("client_session_raw", 0x2d),
    ("client_session_cut", 0xac),
    ("client_too_large", 0x20),
    ("server_session", 0x2e),
];

/// Everything after the HTTP head (request or response).
fn after_http_head(bytes: &[u8]) -> &[u8] {
    let at = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    &bytes[at + 4..]
}

fn ws_cfg() -> sealrpc_ws::WsConfig {
    sealrpc_ws::WsConfig {
        ping_interval: Duration::ZERO,
        ..sealrpc_ws::WsConfig::default()
    }
}

/// (client to server, server to client): a session where the client sends
/// its frames and the server its own, then both close.
async fn capture_ws() -> (Vec<u8>, Vec<u8>) {
    let listener = sealrpc_ws::WsListener::bind("127.0.0.1:0", ws_cfg())
        .await
        .expect("bind");
    let tap = Tap::start(listener.local_addr().expect("addr"))
        .await
        .expect("tap");
    let url = format!("ws://{}/sealrpc", tap.addr());
    let (client, server) = tokio::join!(sealrpc_ws::connect(&url, ws_cfg()), listener.accept());
    let (mut cr, mut cw, _) = client.expect("connect");
    let (mut sr, mut sw, _) = server.expect("accept");
    for f in client_frames() {
        cw.send(Bytes::from(f)).await.expect("send");
    }
    for f in server_frames() {
        sw.send(Bytes::from(f)).await.expect("send");
    }
    for _ in client_frames() {
        sr.recv().await.expect("recv").expect("frame");
    }
    for _ in server_frames() {
        cr.recv().await.expect("recv").expect("frame");
    }
    cw.close().await.expect("close");
    assert!(sr.recv().await.expect("close seen").is_none());
    sw.close().await.expect("close");
    assert!(cr.recv().await.expect("close seen").is_none());
    (tap.to_server(), tap.to_client())
}

/// Parses unmasked server frames (RFC 6455 §5.2): binary payloads until
/// the close frame.
fn server_to_client_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (b0, b1) = (bytes[0], bytes[1]);
        assert_eq!(b1 & 0x80, 0, "a server frame is not masked");
        let (len, head) = match b1 & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => panic!("no seed frame is that long"),
            n => (usize::from(n), 2),
        };
        let payload = bytes[head..head + len].to_vec();
        bytes = &bytes[head + len..];
        match b0 {
            0x82 => out.push(payload),
            0x88 => {
                assert!(bytes.is_empty(), "nothing after the close frame");
                return out;
            }
            other => panic!("unexpected frame byte {other:#x}"),
        }
    }
}

#[tokio::test]
async fn ws_frames_seeds_are_real_traffic() {
    if rewrite() {
        let (up, down) = guarded("capture", capture_ws()).await;
        for (name, config) in WS_SEEDS {
            let stream = match name {
                "client_session_raw" => &up[..],
                "server_session" => after_http_head(&down),
                _ => after_http_head(&up),
            };
            write_seed("ws_frames", name, &[config], stream);
        }
    }
    let listener = sealrpc_ws::WsListener::bind("127.0.0.1:0", ws_cfg())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    for (name, config) in WS_SEEDS {
        let (got_config, stream) = seed("ws_frames", name, 1);
        assert_eq!(got_config, [config], "{name}");
        if config & 3 == 2 {
            assert_eq!(server_to_client_frames(&stream), server_frames());
            continue;
        }
        let mut bytes = if config & 3 == 1 {
            Vec::new()
        } else {
            WS_REQUEST.to_vec()
        };
        bytes.extend_from_slice(&stream);
        // As a real client does: the frames once the server has answered.
        let split = after_http_head(&bytes).len();
        let (head, frames) = bytes.split_at(bytes.len() - split);
        let client = async {
            let mut tcp = replay(addr, head).await;
            let mut answer = Vec::new();
            while !answer.ends_with(b"\r\n\r\n") {
                answer.push(tcp.read_u8().await.expect("the answer"));
            }
            assert!(answer.starts_with(b"HTTP/1.1 101 "), "{name}");
            tcp.write_all(frames).await.expect("frames");
            tcp
        };
        let (accepted, _tcp) =
            guarded(name, async { tokio::join!(listener.accept(), client) }).await;
        let (mut r, _w, _) = accepted.expect("accept");
        for want in client_frames() {
            let got = guarded(name, r.recv()).await.expect("recv").expect("frame");
            assert_eq!(got, want[..], "{name}");
        }
        assert!(guarded(name, r.recv()).await.expect("close").is_none());
    }
}

// ---------------------------------------------------------------- zmq

/// `zmq_frames` seed configuration: `[config]`; bits 0-1 the frame limit
/// (3: 256 bytes), 2-3 the queue (3: 64 frames, 0: 1), 4 drain after each
/// message, 5 a greeting and READY put before each peer's bytes.
const ZMQ_SEEDS: [(&str, u8); 4] = [
    ("dealer", 0x1f),
    ("two_dealers", 0x1f),
    ("queue_full", 0x03),
    ("after_hello", 0x3f),
];
const PEER_SEPARATOR: &[u8] = b"~PEER~";

/// What `zmq_frames` puts before each peer's bytes with bit 5: a ZMTP 3.0
/// NULL greeting and a READY command from a DEALER with no identity.
fn zmtp_hello() -> Vec<u8> {
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[12..16].copy_from_slice(b"NULL");
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&6u32.to_be_bytes());
    ready.extend_from_slice(b"DEALER");
    let mut out = greeting.to_vec();
    out.extend_from_slice(&[0x04, ready.len() as u8]);
    out.extend_from_slice(&ready);
    out
}

async fn capture_zmq() -> Vec<u8> {
    let listener = sealrpc_zmq::ZmqListener::bind("tcp://127.0.0.1:0", Default::default())
        .await
        .expect("bind");
    let endpoint = listener.local_endpoint();
    let port = endpoint.rsplit(':').next().expect("port");
    let upstream = format!("127.0.0.1:{port}").parse().expect("addr");
    let tap = Tap::start(upstream).await.expect("tap");
    let (_cr, mut cw) = sealrpc_zmq::connect(&format!("tcp://{}", tap.addr()), Default::default())
        .await
        .expect("connect");
    for f in client_frames() {
        cw.send(Bytes::from(f)).await.expect("send");
    }
    let (mut sr, _sw, _) = listener.accept().await.expect("accept");
    for _ in client_frames() {
        sr.recv().await.expect("recv").expect("frame");
    }
    tap.to_server()
}

#[tokio::test]
async fn zmq_frames_seeds_are_real_traffic() {
    if rewrite() {
        let stream = guarded("capture", capture_zmq()).await;
        let hello = zmtp_hello();
        assert_eq!(
            stream[..hello.len()],
            hello,
            "what a real DEALER sends first"
        );
        for (name, config) in ZMQ_SEEDS {
            let bytes = match name {
                "two_dealers" => [&stream[..], PEER_SEPARATOR, &stream[..]].concat(),
                "after_hello" => stream[hello.len()..].to_vec(),
                _ => stream.clone(),
            };
            write_seed("zmq_frames", name, &[config], &bytes);
        }
    }
    let listener = sealrpc_zmq::ZmqListener::bind("tcp://127.0.0.1:0", Default::default())
        .await
        .expect("bind");
    let endpoint = listener.local_endpoint();
    let port = endpoint.rsplit(':').next().expect("port");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for (name, config) in ZMQ_SEEDS {
        let (got_config, stream) = seed("zmq_frames", name, 1);
        assert_eq!(got_config, [config], "{name}");
        let mut peers: Vec<Vec<u8>> = Vec::new();
        let mut rest = &stream[..];
        while let Some(at) = rest
            .windows(PEER_SEPARATOR.len())
            .position(|w| w == PEER_SEPARATOR)
        {
            peers.push(rest[..at].to_vec());
            rest = &rest[at + PEER_SEPARATOR.len()..];
        }
        peers.push(rest.to_vec());
        for peer in peers {
            let bytes = if config & 0x20 != 0 {
                [zmtp_hello(), peer].concat()
            } else {
                peer
            };
            // Left open until its frames are read: ZMTP has no close.
            let tcp = replay(addr, &bytes).await;
            let (mut r, _w, _) = guarded(name, listener.accept()).await.expect("accept");
            for want in client_frames() {
                let got = guarded(name, r.recv()).await.expect("recv").expect("frame");
                assert_eq!(got, want[..], "{name}");
            }
            drop(tcp);
        }
    }
}
