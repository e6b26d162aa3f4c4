//! The WebSocket frame transport over real loopback sockets: round trips,
//! size limits in both directions, handshake refusals, text and error
//! closes, clean close and FIN, keepalive (idle kept, silent peer found
//! dead), a peer vanishing mid-message, and cancel safety.
//!
//! No test measures time. Every `timeout` is a hang guard (it turns "waits
//! forever" into a failure); keepalive tests synchronise on pings observed
//! by a raw peer.
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use sealrpc_ws::{connect, WsConfig, WsError, WsListener, WsReader, WsWriter, DEFAULT_MAX_FRAME};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

// ---------------------------------------------------------------- allocation probe

/// Records the largest single allocation requested by anything in this test
/// binary, so "refused before buffering" is checked rather than assumed.
struct LargestAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for LargestAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: LargestAlloc = LargestAlloc;

/// Well above anything a legitimate test here allocates, far below 1 TiB.
const ALLOC_CEILING: usize = 256 * 1024 * 1024;

// ---------------------------------------------------------------- helpers

/// Turns "waits forever" into a failure; never reached when correct.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The keepalive period of the keepalive tests.
const PING: Duration = Duration::from_millis(100);

/// Small buffers, keepalive off unless a test turns it on.
fn cfg(max_frame: usize) -> WsConfig {
    WsConfig {
        max_frame,
        ping_interval: Duration::ZERO,
        read_buffer: 1024,
        write_buffer: 1024,
        ..WsConfig::default()
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// Connects to `path` on `addr`.
async fn dial(
    addr: SocketAddr,
    path: &str,
    c: WsConfig,
) -> Result<(WsReader, WsWriter, SocketAddr), WsError> {
    connect(&url(addr, path), c).await
}

async fn listener(c: WsConfig) -> (WsListener, SocketAddr) {
    let l = WsListener::bind("127.0.0.1:0", c).await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// A connected pair: (client reader, client writer, server reader, server writer).
async fn pair(c: WsConfig) -> (WsReader, WsWriter, WsReader, WsWriter) {
    let (l, addr) = listener(c.clone()).await;
    let (client, server) = tokio::join!(dial(addr, "/sealrpc", c), l.accept());
    let (cr, cw, peer) = client.expect("connect");
    let (sr, sw, _) = server.expect("accept");
    assert_eq!(peer, addr);
    (cr, cw, sr, sw)
}

/// A raw tokio-tungstenite client with no size limits, and our server's halves.
async fn raw_client(c: WsConfig) -> (WebSocketStream<TcpStream>, WsReader, WsWriter) {
    let (l, addr) = listener(c).await;
    let unlimited = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let client = async {
        let tcp = TcpStream::connect(addr).await.expect("tcp connect");
        tokio_tungstenite::client_async_with_config(url(addr, "/sealrpc"), tcp, Some(unlimited))
            .await
            .expect("raw handshake")
            .0
    };
    let (raw, server) = tokio::join!(client, l.accept());
    let (r, w, _) = server.expect("accept");
    (raw, r, w)
}

/// Reads an HTTP head byte by byte (nothing past it).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.expect("read head") == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn upgrade_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A raw TCP client that upgrades by hand, and our server's halves.
async fn raw_tcp_client(c: WsConfig) -> (TcpStream, WsReader, WsWriter) {
    let (l, addr) = listener(c).await;
    let client = async {
        let mut s = TcpStream::connect(addr).await.expect("tcp connect");
        s.write_all(upgrade_request(addr, "/sealrpc").as_bytes())
            .await
            .expect("write request");
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        s
    };
    let (raw, server) = tokio::join!(client, l.accept());
    let (r, w, _) = server.expect("accept");
    (raw, r, w)
}

/// A raw TCP server that upgrades by hand, and our client's halves.
async fn raw_tcp_server(c: WsConfig) -> (TcpStream, WsReader, WsWriter) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let server = async {
        let (mut s, _) = tcp.accept().await.expect("accept");
        let head = read_head(&mut s).await;
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key");
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        s.write_all(resp.as_bytes()).await.expect("write response");
        s
    };
    let (client, raw) = tokio::join!(dial(addr, "/sealrpc", c), server);
    let (r, w, _) = client.expect("connect");
    (raw, r, w)
}

/// A client frame header (masked, with a zero key so the payload goes as is).
fn client_header(first_byte: u8, len: u64) -> Vec<u8> {
    let mut h = vec![first_byte];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xffff {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    h
}

/// A whole final binary client frame.
fn client_binary(p: &[u8]) -> Vec<u8> {
    let mut f = client_header(0x82, p.len() as u64);
    f.extend_from_slice(p);
    f
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn next(r: &mut WsReader) -> Vec<u8> {
    r.recv()
        .await
        .expect("recv")
        .expect("a frame, not the end")
        .to_vec()
}

/// The next message a raw peer gets, other than pings and pongs.
async fn raw_next(raw: &mut WebSocketStream<TcpStream>) -> Message {
    loop {
        match raw.next().await.expect("a message").expect("no error") {
            Message::Ping(_) | Message::Pong(_) => {}
            m => return m,
        }
    }
}

fn close_code(m: Message) -> CloseCode {
    match m {
        Message::Close(Some(f)) => f.code,
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Compile-time check: every future is `Send`, so it can run on any task.
#[allow(dead_code)]
fn futures_are_send(mut r: WsReader, mut w: WsWriter, l: WsListener) {
    fn send<T: Send>(_: T) {}
    send(connect("ws://127.0.0.1:1/sealrpc", WsConfig::default()));
    send(WsListener::bind("127.0.0.1:0", WsConfig::default()));
    send(l.accept());
    send(r.recv());
    send(w.feed(Bytes::new()));
    send(w.flush());
    send(w.send(Bytes::new()));
    send(w.close());
}

// ---------------------------------------------------------------- round trips

#[tokio::test]
async fn default_config() {
    let c = WsConfig::default();
    assert_eq!(c.max_frame, DEFAULT_MAX_FRAME);
    assert_eq!(c.max_frame, 16 * 1024 * 1024);
    assert_eq!(c.path, "/sealrpc");
    assert_eq!(c.ping_interval, Duration::from_secs(20));
    assert!(c.read_buffer <= 16 * 1024 && c.write_buffer <= 16 * 1024);
    assert_eq!(c.handshake_timeout, sealrpc_ws::HANDSHAKE_TIMEOUT);
}

#[tokio::test]
async fn many_frames_round_trip_including_empty_and_max_size() {
    let c = WsConfig {
        ping_interval: Duration::ZERO,
        ..WsConfig::default()
    };
    let (_cr, mut cw, mut sr, _sw) = pair(c).await;
    let mut frames: Vec<Vec<u8>> = vec![Vec::new()];
    frames.extend((0..500).map(|i| payload((i * 37) % 3000, i as u8)));
    frames.push(Vec::new());
    frames.push(payload(DEFAULT_MAX_FRAME, 9));
    frames.push(payload(1, 1));
    frames.push(payload(70_000, 2));
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for f in sent {
            cw.send(Bytes::from(f)).await.expect("send");
        }
        cw.close().await.expect("close");
    });
    for (i, want) in frames.iter().enumerate() {
        let got = sr.recv().await.expect("recv").expect("frame");
        assert_eq!(got.len(), want.len(), "frame {i}");
        assert!(got[..] == want[..], "frame {i} content");
    }
    assert!(sr.recv().await.expect("clean close").is_none());
    writer.await.expect("writer task");
}

#[tokio::test]
async fn both_directions_work_at_once() {
    let (mut cr, mut cw, mut sr, mut sw) = pair(cfg(4096)).await;
    cw.send(Bytes::from_static(b"ping")).await.expect("send");
    assert_eq!(next(&mut sr).await, b"ping");
    sw.send(Bytes::from_static(b"pong")).await.expect("send");
    assert_eq!(next(&mut cr).await, b"pong");
}

#[tokio::test]
async fn several_feeds_then_one_flush() {
    let (_cr, mut cw, mut sr, _sw) = pair(cfg(8192)).await;
    let frames = [payload(10, 1), Vec::new(), payload(4096, 2), payload(3, 3)];
    for f in &frames {
        cw.feed(Bytes::from(f.clone())).await.expect("feed");
    }
    cw.flush().await.expect("flush");
    for f in &frames {
        assert_eq!(&next(&mut sr).await, f);
    }
    cw.flush().await.expect("empty flush");
    cw.send(Bytes::from_static(b"after")).await.expect("send");
    assert_eq!(next(&mut sr).await, b"after");
}

#[tokio::test]
async fn messages_are_binary_websocket_messages_on_the_wire() {
    let (mut raw, mut r, mut w) = raw_client(cfg(4096)).await;
    w.send(Bytes::from_static(b"to raw")).await.expect("send");
    assert_eq!(raw_next(&mut raw).await, Message::binary(&b"to raw"[..]));
    raw.send(Message::binary(&b"from raw"[..]))
        .await
        .expect("raw send");
    assert_eq!(next(&mut r).await, b"from raw");
}

// ---------------------------------------------------------------- size limits

#[tokio::test]
async fn inbound_message_over_the_limit_is_too_large() {
    let max = 1000;
    let (mut raw, mut r, _w) = raw_client(cfg(max)).await;
    raw.send(Message::binary(payload(max, 4)))
        .await
        .expect("raw send");
    assert_eq!(next(&mut r).await, payload(max, 4), "exactly the limit");
    raw.send(Message::binary(payload(max + 1, 5)))
        .await
        .expect("raw send");
    match r.recv().await {
        Err(WsError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        matches!(r.recv().await, Err(WsError::TooLarge { .. })),
        "sticky"
    );
    // The connection is ended from our side with "message too big".
    assert_eq!(close_code(raw_next(&mut raw).await), CloseCode::Size);
}

#[tokio::test]
async fn inbound_huge_announcement_is_refused_before_buffering() {
    let (mut raw, mut r, _w) = raw_tcp_client(WsConfig::default()).await;
    // A header announcing 1 TiB, and the connection stays open: a reader
    // that waited for the body would never return.
    raw.write_all(&client_header(0x82, 1 << 40))
        .await
        .expect("write");
    LARGEST.store(0, Ordering::Relaxed);
    let res = tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("recv refused instead of waiting for 1 TiB");
    let largest = LARGEST.load(Ordering::Relaxed);
    match res {
        Err(WsError::TooLarge { len, max }) => {
            assert_eq!(len, 1 << 40);
            assert_eq!(max, DEFAULT_MAX_FRAME);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(largest < ALLOC_CEILING, "{largest} bytes were allocated");
}

#[tokio::test]
async fn inbound_fragments_adding_up_over_the_limit_are_too_large() {
    let max = 1000;
    let (mut raw, mut r, _w) = raw_tcp_client(cfg(max)).await;
    let mut bytes = client_header(0x02, 600); // binary, not final
    bytes.extend_from_slice(&payload(600, 1));
    bytes.extend(client_header(0x80, 600)); // continuation, final
    bytes.extend_from_slice(&payload(600, 2));
    raw.write_all(&bytes).await.expect("write");
    match tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("hang")
    {
        Err(WsError::TooLarge { len, max: m }) => assert_eq!((len, m), (1200, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn outbound_frame_over_the_limit_is_refused_and_the_writer_survives() {
    let max = 2048;
    let (_cr, mut cw, mut sr, _sw) = pair(cfg(max)).await;
    cw.feed(Bytes::from_static(b"before")).await.expect("feed");
    match cw.send(Bytes::from(vec![1; max + 1])).await {
        Err(WsError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match cw.feed(Bytes::from(vec![2; max + 100])).await {
        Err(WsError::TooLarge { len, .. }) => assert_eq!(len, max + 100),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(cw.max_frame(), max);
    cw.send(Bytes::from(payload(max, 5)))
        .await
        .expect("a max-size frame still goes through");
    assert_eq!(next(&mut sr).await, b"before");
    assert_eq!(next(&mut sr).await, payload(max, 5));
    cw.send(Bytes::from_static(b"next")).await.expect("send");
    assert_eq!(next(&mut sr).await, b"next");
}

// ---------------------------------------------------------------- handshake

#[tokio::test]
async fn wrong_path_is_a_handshake_error_and_the_listener_goes_on() {
    let (l, addr) = listener(cfg(4096)).await;
    let (client, server) = tokio::join!(dial(addr, "/elsewhere", cfg(4096)), l.accept());
    match client {
        Err(WsError::Handshake(msg)) => assert!(msg.contains("404"), "{msg}"),
        Err(other) => panic!("expected Handshake, got {other:?}"),
        Ok(_) => panic!("expected Handshake, got a connection"),
    }
    match server {
        Err(WsError::Handshake(msg)) => assert!(msg.contains("404"), "{msg}"),
        Err(other) => panic!("expected Handshake, got {other:?}"),
        Ok(_) => panic!("expected Handshake, got a connection"),
    }
    let (client, server) = tokio::join!(dial(addr, "/sealrpc", cfg(4096)), l.accept());
    let (_cr, mut cw, _) = client.expect("connect");
    let (mut sr, _sw, _) = server.expect("accept");
    cw.send(Bytes::from_static(b"in")).await.expect("send");
    assert_eq!(next(&mut sr).await, b"in");
}

#[tokio::test]
async fn a_plain_http_request_is_a_handshake_error() {
    let (l, addr) = listener(cfg(4096)).await;
    let client = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET /sealrpc HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        s
    };
    let (_s, server) = tokio::join!(client, l.accept());
    assert!(matches!(server, Err(WsError::Handshake(_))), "{server:?}");
}

#[tokio::test]
async fn a_server_that_does_not_upgrade_is_a_handshake_error() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let server = async {
        let (mut s, _) = tcp.accept().await.expect("accept");
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .expect("write");
        s
    };
    let (client, _s) = tokio::join!(dial(addr, "/sealrpc", cfg(4096)), server);
    assert!(matches!(client, Err(WsError::Handshake(_))));
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for bad in ["http://127.0.0.1:1/sealrpc", "not a url", "ws:///sealrpc"] {
        assert!(
            matches!(connect(bad, cfg(4096)).await, Err(WsError::Handshake(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_accept() {
    let (l, addr) = listener(cfg(4096)).await;
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let (client, server) = tokio::time::timeout(
        HANG_GUARD,
        futures::future::join(dial(addr, "/sealrpc", cfg(4096)), l.accept()),
    )
    .await
    .expect("accept was held up by a silent client");
    let (_cr, mut cw, peer) = client.expect("connect");
    let (mut sr, _sw, _) = server.expect("accept");
    assert_eq!(peer, addr);
    cw.send(Bytes::from_static(b"hi")).await.expect("send");
    assert_eq!(next(&mut sr).await, b"hi");
}

/// A client that never finishes its upgrade request (silent, or one byte
/// of it) is dropped at `handshake_timeout`: `accept` reports it as a
/// handshake error, and the client sees the end of the connection.
#[tokio::test]
async fn a_client_that_never_finishes_its_upgrade_is_dropped_at_the_timeout() {
    let c = WsConfig {
        handshake_timeout: Duration::from_millis(200),
        ..cfg(4096)
    };
    let (l, addr) = listener(c).await;
    for partial in [&b""[..], b"G"] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(partial).await.expect("write");
        match tokio::time::timeout(HANG_GUARD, l.accept()).await {
            Ok(Err(WsError::Handshake(msg))) => assert!(msg.contains("200ms"), "{msg}"),
            other => panic!("expected a handshake timeout, got {other:?}"),
        }
        let mut rest = Vec::new();
        let end = tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut rest)).await;
        assert!(end.is_ok(), "the connection was not ended");
        assert!(rest.is_empty(), "{rest:?}");
    }
}

#[tokio::test]
async fn accept_is_cancel_safe() {
    let (l, addr) = listener(cfg(4096)).await;
    let u = url(addr, "/sealrpc");
    let client = tokio::spawn(async move { connect(&u, cfg(4096)).await });
    let mut cancelled = 0;
    let accepted = loop {
        tokio::select! {
            biased;
            a = l.accept() => break a,
            () = tokio::task::yield_now() => cancelled += 1,
        }
    };
    assert!(
        cancelled > 0,
        "accept was dropped mid-handshake at least once"
    );
    let (mut sr, _sw, _) = accepted.expect("accept");
    let (_cr, mut cw, _) = client.await.expect("task").expect("connect");
    cw.send(Bytes::from_static(b"ok")).await.expect("send");
    assert_eq!(next(&mut sr).await, b"ok");
}

// ---------------------------------------------------------------- protocol errors

#[tokio::test]
async fn a_text_message_is_a_protocol_error() {
    let (mut raw, mut r, _w) = raw_client(cfg(4096)).await;
    raw.send(Message::text("hello")).await.expect("raw send");
    assert!(matches!(r.recv().await, Err(WsError::Protocol(_))));
    assert!(
        matches!(r.recv().await, Err(WsError::Protocol(_))),
        "sticky"
    );
    assert_eq!(close_code(raw_next(&mut raw).await), CloseCode::Unsupported);
}

#[tokio::test]
async fn a_close_with_an_error_code_is_a_protocol_error() {
    let (mut raw, mut r, _w) = raw_client(cfg(4096)).await;
    raw.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Error,
        reason: "boom".into(),
    })))
    .await
    .expect("raw close");
    match r.recv().await {
        Err(WsError::Protocol(msg)) => assert!(msg.contains("1011"), "{msg}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
}

// ---------------------------------------------------------------- close

#[tokio::test]
async fn clean_close_is_none_on_both_sides() {
    // Client closes.
    let (mut cr, mut cw, mut sr, mut sw) = pair(cfg(4096)).await;
    cw.send(Bytes::from_static(b"last")).await.expect("send");
    cw.close().await.expect("close");
    assert_eq!(next(&mut sr).await, b"last");
    assert_end(&mut sr, "the client's close").await;
    assert_end(&mut sr, "sticky").await;
    assert_end(&mut cr, "the server's echo").await;
    assert!(sw.send(Bytes::from_static(b"late")).await.is_err());

    // Server closes.
    let (mut cr, _cw, mut sr, sw) = pair(cfg(4096)).await;
    sw.close().await.expect("close");
    assert_end(&mut cr, "the server's close").await;
    assert_end(&mut sr, "the client's echo").await;
}

/// `recv` says the connection ended cleanly (and does not hang).
async fn assert_end(r: &mut WsReader, what: &str) {
    match tokio::time::timeout(HANG_GUARD, r.recv()).await {
        Ok(Ok(None)) => {}
        Ok(other) => panic!("{what}: expected Ok(None), got {other:?}"),
        Err(_) => panic!("{what}: recv hung"),
    }
}

#[tokio::test]
async fn close_sends_a_close_frame_then_fin() {
    let (mut raw, _r, mut w) = raw_tcp_server(cfg(4096)).await;
    w.feed(Bytes::from_static(b"bye")).await.expect("feed");
    w.close().await.expect("close");
    // read_to_end returns only at FIN.
    let mut bytes = Vec::new();
    tokio::time::timeout(HANG_GUARD, raw.read_to_end(&mut bytes))
        .await
        .expect("no FIN")
        .expect("read");
    // Client frames are masked: binary "bye", then a close with no code.
    assert_eq!(&bytes[..2], &[0x82, 0x83]);
    assert_eq!(bytes.len(), 2 + 4 + 3 + 2 + 4);
    assert_eq!(&bytes[9..11], &[0x88, 0x80]);
}

#[tokio::test]
async fn a_peer_vanishing_mid_message_is_an_error_not_a_hang() {
    let (mut raw, mut r, _w) = raw_tcp_client(cfg(4096)).await;
    let mut bytes = client_binary(b"whole");
    bytes.extend(client_header(0x82, 100));
    bytes.extend_from_slice(b"only ten b");
    raw.write_all(&bytes).await.expect("write");
    drop(raw);
    assert_eq!(next(&mut r).await, b"whole");
    match tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("hang")
    {
        Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("expected an EOF error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_vanishing_between_messages_without_a_close_is_an_error() {
    let (mut raw, mut r, _w) = raw_tcp_client(cfg(4096)).await;
    raw.write_all(&client_binary(b"one")).await.expect("write");
    drop(raw);
    assert_eq!(next(&mut r).await, b"one");
    match r.recv().await {
        Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("expected an EOF error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- keepalive

fn keepalive(max_frame: usize) -> WsConfig {
    WsConfig {
        ping_interval: PING,
        ..cfg(max_frame)
    }
}

/// Reads (so tungstenite answers pings) until `n` pings were seen.
async fn see_pings(raw: &mut WebSocketStream<TcpStream>, n: usize) {
    let mut seen = 0;
    while seen < n {
        match raw.next().await.expect("open").expect("no error") {
            Message::Ping(_) => seen += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
}

type Recv = tokio::task::JoinHandle<Result<Option<bytes::BytesMut>, WsError>>;

/// The raw peer answers six pings while our reader, idle, must not end.
async fn idle_for_six_pings(raw: &mut WebSocketStream<TcpStream>, reader: &mut Recv) {
    tokio::time::timeout(HANG_GUARD, async {
        tokio::select! {
            early = reader => panic!("recv ended while idle: {early:?}"),
            () = see_pings(raw, 6) => {}
        }
    })
    .await
    .expect("pings kept coming");
}

#[tokio::test]
async fn keepalive_keeps_an_idle_server_side_connection_open() {
    let (mut raw, mut r, _w) = raw_client(keepalive(4096)).await;
    let mut reader = tokio::spawn(async move { r.recv().await });
    // Six pings answered = at least six intervals idle, longer than the
    // three after which an unanswering peer counts as dead.
    idle_for_six_pings(&mut raw, &mut reader).await;
    raw.send(Message::binary(&b"still here"[..]))
        .await
        .expect("send");
    let got = reader.await.expect("reader task");
    assert_eq!(got.expect("recv").expect("frame"), &b"still here"[..]);
}

#[tokio::test]
async fn keepalive_keeps_an_idle_client_side_connection_open() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let server = async {
        let (s, _) = tcp.accept().await.expect("accept");
        tokio_tungstenite::accept_async(s)
            .await
            .expect("raw handshake")
    };
    let (client, mut raw) = tokio::join!(dial(addr, "/sealrpc", keepalive(4096)), server);
    let (mut r, mut w, _) = client.expect("connect");
    let mut reader = tokio::spawn(async move { r.recv().await });
    idle_for_six_pings(&mut raw, &mut reader).await;
    raw.send(Message::binary(&b"still here"[..]))
        .await
        .expect("send");
    let got = reader.await.expect("reader task");
    assert_eq!(got.expect("recv").expect("frame"), &b"still here"[..]);
    w.send(Bytes::from_static(b"and back")).await.expect("send");
    assert_eq!(raw_next(&mut raw).await, Message::binary(&b"and back"[..]));
}

#[tokio::test]
async fn a_server_side_peer_that_stops_answering_is_dead() {
    // The raw client completes the handshake, then never reads or writes.
    let (_raw, mut r, _w) = raw_tcp_client(keepalive(4096)).await;
    match tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("hang")
    {
        Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("expected TimedOut, got {other:?}"),
    }
    match r.recv().await {
        Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "sticky"),
        other => panic!("expected TimedOut, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_side_peer_that_stops_answering_is_dead() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let server = async {
        let (s, _) = tcp.accept().await.expect("accept");
        tokio_tungstenite::accept_async(s)
            .await
            .expect("raw handshake")
    };
    // The raw server is never polled again: it never answers a ping.
    let (client, _raw) = tokio::join!(dial(addr, "/sealrpc", keepalive(4096)), server);
    let (mut r, _w, _) = client.expect("connect");
    match tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("hang")
    {
        Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("expected TimedOut, got {other:?}"),
    }
}

#[tokio::test]
async fn a_large_message_arriving_slowly_keeps_the_peer_alive() {
    // The raw client trickles one message over more than three intervals;
    // the bytes arriving count as life although no whole frame does. The
    // raw peer signals each chunk; we count pings rather than time.
    let (mut raw, mut r, _w) = raw_tcp_client(keepalive(64 * 1024)).await;
    let body = payload(40_000, 3);
    let mut wire = client_header(0x82, body.len() as u64);
    wire.extend_from_slice(&body);
    let mut reader = tokio::spawn(async move { r.recv().await });
    // After each chunk but the last, wait for our side's next ping (an
    // empty server frame, 0x89 0x00): our side saw an interval without
    // bytes. The raw peer never answers, so only the trickle keeps it alive.
    let chunks: Vec<&[u8]> = wire.chunks(wire.len() / 8 + 1).collect();
    let trickle = async {
        for (i, chunk) in chunks.iter().enumerate() {
            raw.write_all(chunk).await.expect("write");
            if i + 1 < chunks.len() {
                let mut ping = [0u8; 2];
                raw.read_exact(&mut ping).await.expect("read ping");
                assert_eq!(ping, [0x89, 0x00]);
            }
        }
    };
    let got = tokio::time::timeout(HANG_GUARD, async {
        tokio::select! {
            early = &mut reader => panic!("recv ended mid-message: {early:?}"),
            () = trickle => {}
        }
        reader.await.expect("reader task")
    })
    .await
    .expect("hang");
    assert_eq!(got.expect("recv").expect("frame"), &body[..]);
}

// ---------------------------------------------------------------- cancel safety

#[tokio::test]
async fn recv_cancelled_mid_message_loses_nothing() {
    let (mut raw, mut r, _w) = raw_tcp_client(cfg(4096)).await;
    let first = client_binary(b"first");
    let second = client_binary(&payload(300, 3));
    let mut chunk = first.clone();
    chunk.extend_from_slice(&second[..50]);
    raw.write_all(&chunk).await.expect("write");
    assert_eq!(next(&mut r).await, b"first");
    assert!(
        r.recv().now_or_never().is_none(),
        "the second message is not complete yet"
    );
    raw.write_all(&second[50..]).await.expect("write");
    assert_eq!(next(&mut r).await, payload(300, 3));
}

#[tokio::test]
async fn recv_in_a_busy_select_with_keepalive_on_loses_nothing() {
    let (_cr, mut cw, mut sr, _sw) = pair(keepalive(4096)).await;
    let n = 300;
    let writer = tokio::spawn(async move {
        for i in 0..n {
            cw.send(Bytes::from(payload(i % 200, i as u8)))
                .await
                .expect("send");
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        cw
    });
    let mut got = Vec::new();
    let mut interruptions = 0u64;
    while got.len() < n {
        tokio::select! {
            f = sr.recv() => got.push(f.expect("recv").expect("frame").to_vec()),
            () = tokio::task::yield_now() => interruptions += 1,
        }
    }
    let _cw = writer.await.expect("writer");
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &payload(i % 200, i as u8), "frame {i}");
    }
    assert!(interruptions > 0);
}
