//! The ZeroMQ frame transport over real loopback sockets: round trips,
//! per-peer virtual connections, size limits in both directions, the
//! per-peer queue bound, ends (server dropped, close, listener dropped),
//! and cancel safety.
//!
//! No test measures time. Every `timeout` is a hang guard (it turns "waits
//! forever" into a failure).
use bytes::Bytes;
use sealrpc_zmq::{connect, ZmqConfig, ZmqError, ZmqListener, ZmqReader, ZmqWriter};
use sealrpc_zmq::{DEFAULT_MAX_FRAME, DEFAULT_QUEUE};
use std::future::Future;
use std::time::Duration;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

// ---------------------------------------------------------------- helpers

/// Turns "waits forever" into a failure; never reached when correct.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

fn cfg(max_frame: usize, queue: usize) -> ZmqConfig {
    ZmqConfig {
        max_frame,
        queue,
        ..ZmqConfig::default()
    }
}

async fn listener(c: ZmqConfig) -> ZmqListener {
    ZmqListener::bind("tcp://127.0.0.1:0", c)
        .await
        .expect("bind")
}

/// A client, and the server's virtual connection for it (made by the
/// client's first frame, `hello`, which the server has read).
struct Pair {
    cr: ZmqReader,
    cw: ZmqWriter,
    sr: ZmqReader,
    sw: ZmqWriter,
    identity: String,
}

async fn client_of(l: &ZmqListener, c: ZmqConfig, hello: &'static [u8]) -> Pair {
    let (cr, mut cw) = guard("connect", connect(&l.local_endpoint(), c))
        .await
        .expect("connect");
    cw.send(Bytes::from_static(hello)).await.expect("hello");
    let (mut sr, sw, identity) = guard("accept", l.accept()).await.expect("accept");
    assert_eq!(next(&mut sr).await, hello);
    Pair {
        cr,
        cw,
        sr,
        sw,
        identity,
    }
}

async fn next(r: &mut ZmqReader) -> Vec<u8> {
    guard("recv", r.recv())
        .await
        .expect("recv")
        .expect("a frame, not the end")
        .to_vec()
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A raw zeromq DEALER, connected, with no size limit of ours.
async fn raw_dealer(l: &ZmqListener) -> zeromq::DealerSocket {
    let mut d = zeromq::DealerSocket::new();
    guard("raw connect", d.connect(&l.local_endpoint()))
        .await
        .expect("raw connect");
    d
}

/// Compile-time check: every future is `Send`, so it can run on any task.
#[allow(dead_code)]
fn futures_are_send(mut r: ZmqReader, mut w: ZmqWriter, l: ZmqListener) {
    fn send<T: Send>(_: T) {}
    send(connect("tcp://127.0.0.1:1", ZmqConfig::default()));
    send(ZmqListener::bind("tcp://127.0.0.1:0", ZmqConfig::default()));
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
    let c = ZmqConfig::default();
    assert_eq!(c.max_frame, DEFAULT_MAX_FRAME);
    assert_eq!(c.max_frame, 16 * 1024 * 1024);
    assert_eq!(c.queue, DEFAULT_QUEUE);
    assert_eq!(c.queue, 1024);
}

#[tokio::test]
async fn local_endpoint_has_the_real_port() {
    let l = listener(ZmqConfig::default()).await;
    let ep = l.local_endpoint();
    let port: u16 = ep
        .strip_prefix("tcp://127.0.0.1:")
        .expect("tcp://127.0.0.1:PORT")
        .parse()
        .expect("a port");
    assert_ne!(port, 0);
}

#[tokio::test]
async fn many_frames_round_trip_both_ways_including_empty_and_max_size() {
    let l = listener(ZmqConfig::default()).await;
    let Pair {
        mut cr,
        mut cw,
        mut sr,
        mut sw,
        ..
    } = client_of(&l, ZmqConfig::default(), b"hello").await;
    let mut frames: Vec<Vec<u8>> = vec![Vec::new()];
    frames.extend((0..500).map(|i| payload((i * 37) % 3000, i as u8)));
    frames.push(Vec::new());
    frames.push(payload(DEFAULT_MAX_FRAME, 9));
    frames.push(payload(1, 1));
    frames.push(payload(70_000, 2));

    // Client to server, fed in batches with one flush each.
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(50) {
            for f in chunk {
                cw.feed(Bytes::from(f.clone())).await.expect("feed");
            }
            cw.flush().await.expect("flush");
        }
        cw
    });
    for (i, want) in frames.iter().enumerate() {
        let got = next(&mut sr).await;
        assert_eq!(got.len(), want.len(), "frame {i}");
        assert!(got == *want, "frame {i} content");
    }
    let _cw = writer.await.expect("writer task");

    // Server to client.
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for f in sent {
            sw.send(Bytes::from(f)).await.expect("send");
        }
        sw
    });
    for (i, want) in frames.iter().enumerate() {
        let got = next(&mut cr).await;
        assert!(got == *want, "frame {i}");
    }
    let _sw = writer.await.expect("writer task");
}

#[tokio::test]
async fn two_clients_get_separate_connections_and_replies_do_not_mix() {
    let l = listener(ZmqConfig::default()).await;
    let mut a = client_of(&l, ZmqConfig::default(), b"I am a").await;
    let mut b = client_of(&l, ZmqConfig::default(), b"I am b").await;
    assert_ne!(a.identity, b.identity);
    assert!(!a.identity.is_empty() && a.identity.chars().all(|c| c.is_ascii_hexdigit()));

    // Interleaved requests; the server echoes each on the connection it
    // came from, tagged with what that connection said first.
    let n = 200;
    for i in 0..n {
        a.cw.feed(Bytes::from(format!("a{i}"))).await.expect("feed");
        b.cw.feed(Bytes::from(format!("b{i}"))).await.expect("feed");
    }
    a.cw.flush().await.expect("flush");
    b.cw.flush().await.expect("flush");
    for i in 0..n {
        for (conn, tag) in [(&mut a, "a"), (&mut b, "b")] {
            let req = String::from_utf8(next(&mut conn.sr).await).expect("utf8");
            assert_eq!(req, format!("{tag}{i}"), "requests are not mixed");
            conn.sw
                .send(Bytes::from(format!("reply to {req}")))
                .await
                .expect("reply");
        }
    }
    for i in 0..n {
        assert_eq!(next(&mut a.cr).await, format!("reply to a{i}").as_bytes());
        assert_eq!(next(&mut b.cr).await, format!("reply to b{i}").as_bytes());
    }
}

#[tokio::test]
async fn accept_is_cancel_safe() {
    let l = listener(ZmqConfig::default()).await;
    let ep = l.local_endpoint();
    let client = tokio::spawn(async move {
        let (r, mut w) = connect(&ep, ZmqConfig::default()).await.expect("connect");
        w.send(Bytes::from_static(b"first")).await.expect("send");
        (r, w)
    });
    let mut cancelled = 0u64;
    let accepted = guard("accept", async {
        loop {
            tokio::select! {
                biased;
                a = l.accept() => break a,
                () = tokio::task::yield_now() => cancelled += 1,
            }
        }
    })
    .await;
    assert!(cancelled > 0, "accept was cancelled at least once");
    let (mut sr, _sw, _) = accepted.expect("accept");
    assert_eq!(next(&mut sr).await, b"first");
    let _client = client.await.expect("client task");
}

#[tokio::test]
async fn recv_in_a_busy_select_loses_nothing() {
    let l = listener(ZmqConfig::default()).await;
    let Pair { cw, mut sr, .. } = client_of(&l, ZmqConfig::default(), b"hello").await;
    let n = 300;
    let writer = tokio::spawn(async move {
        let mut cw = cw;
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
    guard("busy select", async {
        while got.len() < n {
            tokio::select! {
                f = sr.recv() => got.push(f.expect("recv").expect("frame").to_vec()),
                () = tokio::task::yield_now() => interruptions += 1,
            }
        }
    })
    .await;
    let _cw = writer.await.expect("writer");
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &payload(i % 200, i as u8), "frame {i}");
    }
    assert!(interruptions > 0);
}

// ---------------------------------------------------------------- size limits

#[tokio::test]
async fn inbound_frame_over_the_limit_from_a_raw_dealer_is_too_large() {
    let max = 1000;
    let l = listener(cfg(max, 64)).await;
    let mut raw = raw_dealer(&l).await;
    raw.send(ZmqMessage::from(payload(max, 1)))
        .await
        .expect("raw send");
    let (mut sr, mut sw, _) = guard("accept", l.accept()).await.expect("accept");
    assert_eq!(next(&mut sr).await, payload(max, 1), "exactly the limit");
    raw.send(ZmqMessage::from(payload(max + 1, 2)))
        .await
        .expect("raw send");
    match guard("recv", sr.recv()).await {
        Err(ZmqError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        matches!(sr.recv().await, Err(ZmqError::TooLarge { .. })),
        "sticky"
    );
    assert!(
        matches!(
            sw.send(Bytes::from_static(b"late")).await,
            Err(ZmqError::TooLarge { .. })
        ),
        "the writer of a failed connection reports the failure"
    );
    // Other peers are not affected.
    let mut other = client_of(&l, cfg(max, 64), b"other").await;
    other
        .sw
        .send(Bytes::from_static(b"fine"))
        .await
        .expect("send");
    assert_eq!(next(&mut other.cr).await, b"fine");
}

#[tokio::test]
async fn a_first_frame_over_the_limit_makes_no_connection() {
    let max = 100;
    let l = listener(cfg(max, 64)).await;
    let mut raw = raw_dealer(&l).await;
    raw.send(ZmqMessage::from(payload(max + 1, 1)))
        .await
        .expect("raw send");
    // The next connection accepted is a well-behaved one.
    let p = client_of(&l, cfg(max, 64), b"good").await;
    assert!(!p.identity.is_empty());
}

/// A raw TCP peer that speaks ZMTP 3 (NULL mechanism) as a DEALER: the
/// greeting and READY, then `then`; returns how long until the listener's
/// side ended the connection, and what it sent.
async fn zmtp_peer(l: &ZmqListener, then: &[u8]) -> (Duration, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = l.local_endpoint().trim_start_matches("tcp://").to_owned();
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let mut greeting = vec![0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[12..16].copy_from_slice(b"NULL");
    let mut ready = b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER".to_vec();
    ready.splice(0..0, [0x04, ready.len() as u8]);
    s.write_all(&greeting).await.expect("greeting");
    s.write_all(&ready).await.expect("ready");
    s.write_all(then).await.expect("then");
    let start = tokio::time::Instant::now();
    let mut got = Vec::new();
    let _ = guard("the end", s.read_to_end(&mut got)).await;
    (start.elapsed(), got)
}

/// A frame header announcing more than twice the limit (here 4 GiB) is cut
/// by the gate from its header, before zeromq sees it: no connection.
#[tokio::test]
async fn a_frame_far_over_the_limit_cuts_the_peer_unread() {
    let max = 100;
    let l = listener(cfg(max, 64)).await;
    let mut long = vec![0x02];
    long.extend_from_slice(&(4u64 << 30).to_be_bytes());
    let (after, _) = zmtp_peer(&l, &long).await;
    // Cut at once, not at the handshake timeout (10 s by default).
    assert!(after < Duration::from_secs(5), "cut after {after:?}");
    let p = client_of(&l, cfg(max, 64), b"good").await;
    assert!(!p.identity.is_empty());
}

/// A peer that connects and never finishes the ZMTP greeting, or finishes
/// ZMTP and never sends its first message, is cut at the handshake
/// timeout, and not before.
#[tokio::test]
async fn handshakes_are_bounded() {
    let timeout = Duration::from_millis(300);
    let c = ZmqConfig {
        handshake_timeout: timeout,
        ..cfg(1000, 64)
    };
    let l = listener(c).await;
    let addr = l.local_endpoint().trim_start_matches("tcp://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let start = tokio::time::Instant::now();
    let mut greeting = Vec::new();
    let _ = guard(
        "the end",
        tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut greeting),
    )
    .await;
    assert!(
        start.elapsed() >= timeout,
        "cut early: {:?}",
        start.elapsed()
    );
    // zeromq is only reached once the peer has spoken: nothing came back.
    assert!(greeting.is_empty(), "{greeting:?}");
    let (after, got) = zmtp_peer(&l, b"").await;
    assert!(
        after >= timeout - Duration::from_millis(50),
        "cut early: {after:?}"
    );
    assert!(
        got.len() > 64,
        "zeromq's greeting and READY came first: {got:?}"
    );
    // A peer that sends its first message in time is a connection.
    let p = client_of(&l, cfg(1000, 64), b"good").await;
    assert!(!p.identity.is_empty());
}

#[tokio::test]
async fn a_multipart_message_is_a_protocol_error() {
    let l = listener(cfg(1000, 64)).await;
    let mut raw = raw_dealer(&l).await;
    raw.send(ZmqMessage::from("one")).await.expect("raw send");
    let (mut sr, _sw, _) = guard("accept", l.accept()).await.expect("accept");
    assert_eq!(next(&mut sr).await, b"one");
    let mut two = ZmqMessage::from("a");
    two.push_back(Bytes::from_static(b"b"));
    raw.send(two).await.expect("raw send");
    match guard("recv", sr.recv()).await {
        Err(ZmqError::Protocol(msg)) => assert!(msg.contains("2 parts"), "{msg}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
}

#[tokio::test]
async fn outbound_frame_over_the_limit_is_refused_and_the_writer_survives() {
    let max = 2048;
    let l = listener(cfg(max, 64)).await;
    let Pair {
        mut cw,
        mut sr,
        mut sw,
        mut cr,
        ..
    } = client_of(&l, cfg(max, 64), b"hello").await;
    cw.feed(Bytes::from_static(b"before")).await.expect("feed");
    match cw.send(Bytes::from(vec![1; max + 1])).await {
        Err(ZmqError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match cw.feed(Bytes::from(vec![2; max + 100])).await {
        Err(ZmqError::TooLarge { len, .. }) => assert_eq!(len, max + 100),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(cw.max_frame(), max);
    cw.send(Bytes::from(payload(max, 5)))
        .await
        .expect("a max-size frame still goes through");
    assert_eq!(next(&mut sr).await, b"before");
    assert_eq!(next(&mut sr).await, payload(max, 5));

    // The same on the server's side.
    assert!(matches!(
        sw.send(Bytes::from(vec![3; max + 1])).await,
        Err(ZmqError::TooLarge { .. })
    ));
    sw.send(Bytes::from_static(b"still")).await.expect("send");
    assert_eq!(next(&mut cr).await, b"still");
}

#[tokio::test]
async fn a_client_receiving_a_frame_over_its_limit_fails_with_too_large() {
    // The server may send more than the client accepts.
    let l = listener(cfg(4096, 64)).await;
    let Pair { mut cr, mut sw, .. } = client_of(&l, cfg(100, 64), b"hello").await;
    sw.send(Bytes::from(payload(100, 1))).await.expect("send");
    sw.send(Bytes::from(payload(101, 2))).await.expect("send");
    assert_eq!(next(&mut cr).await, payload(100, 1));
    match guard("recv", cr.recv()).await {
        Err(ZmqError::TooLarge { len, max }) => assert_eq!((len, max), (101, 100)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

// ---------------------------------------------------------------- queue bound

/// The byte bound of a server peer's queue: frames the reader took no
/// longer count, and a peer that queues past it is dropped with the typed
/// error (one ROUTER reads every peer: there is no pushing back on one).
#[tokio::test]
async fn a_server_peer_that_queues_too_many_bytes_is_dropped_with_queue_bytes_full() {
    let c = ZmqConfig {
        queue_bytes: 4000,
        ..cfg(1000, 64)
    };
    let l = listener(c).await;
    let Pair { mut cw, mut sr, .. } = client_of(&l, cfg(1000, 64), b"hello").await;
    // Read as they come, 3 at a time: far more than 4000 bytes in all.
    for round in 0..5u8 {
        for i in 0..3u8 {
            cw.send(Bytes::from(vec![round * 3 + i; 1000]))
                .await
                .expect("send");
        }
        for i in 0..3u8 {
            assert_eq!(next(&mut sr).await, vec![round * 3 + i; 1000]);
        }
    }
    // Not read while 20 more arrive: at most 4 are kept, then the error.
    for i in 0..20u8 {
        cw.feed(Bytes::from(vec![i; 1000])).await.expect("feed");
    }
    cw.flush().await.expect("flush");
    let mut kept = 0;
    loop {
        match guard("recv", sr.recv()).await {
            Ok(Some(f)) => {
                assert_eq!(f.len(), 1000);
                kept += 1;
            }
            Err(ZmqError::QueueBytesFull { limit }) => {
                assert_eq!(limit, 4000);
                break;
            }
            other => panic!("expected frames then QueueBytesFull, got {other:?}"),
        }
    }
    assert!(kept <= 4, "{kept} frames of 1000 bytes kept");
}

#[tokio::test]
async fn a_server_peer_that_fills_its_queue_is_dropped_with_queue_full() {
    let queue = 4;
    let l = listener(cfg(1000, queue)).await;
    let Pair {
        mut cr,
        mut cw,
        mut sr,
        mut sw,
        ..
    } = client_of(&l, cfg(1000, 64), b"hello").await;
    // The server does not read while 50 frames arrive.
    for i in 0..50u8 {
        cw.feed(Bytes::from(vec![i; 10])).await.expect("feed");
    }
    cw.flush().await.expect("flush");
    // At most `queue` frames were kept, in order, then the typed error.
    let mut kept = 0u8;
    loop {
        match guard("recv", sr.recv()).await {
            Ok(Some(f)) => {
                assert_eq!(&f[..], &[kept; 10][..], "in order");
                kept += 1;
            }
            Err(ZmqError::QueueFull { limit }) => {
                assert_eq!(limit, queue);
                break;
            }
            other => panic!("expected frames then QueueFull, got {other:?}"),
        }
    }
    assert!(usize::from(kept) <= queue, "{kept} frames kept");
    assert!(
        matches!(sr.recv().await, Err(ZmqError::QueueFull { .. })),
        "sticky"
    );
    assert!(matches!(
        sw.send(Bytes::from_static(b"late")).await,
        Err(ZmqError::QueueFull { .. })
    ));
    // The peer was disconnected: its reader ends rather than hangs.
    match guard("client recv", cr.recv()).await {
        Ok(None) | Err(_) => {}
        Ok(Some(f)) => panic!("unexpected frame {f:?}"),
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_frames_back_and_loses_none() {
    // The client stops pulling when its queue is full; TCP pushes back on
    // the server, which keeps every frame.
    let l = listener(cfg(1000, 64)).await;
    let Pair { mut cr, mut sw, .. } = client_of(&l, cfg(1000, 2), b"hello").await;
    let n = 300u16;
    for i in 0..n {
        sw.feed(Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .expect("feed");
    }
    sw.flush().await.expect("flush");
    for i in 0..n {
        assert_eq!(next(&mut cr).await, i.to_be_bytes());
    }
}

// ---------------------------------------------------------------- ends

#[tokio::test]
async fn the_server_dropping_ends_client_recv_without_a_hang() {
    let l = listener(ZmqConfig::default()).await;
    let Pair {
        mut cr,
        mut cw,
        sr,
        mut sw,
        ..
    } = client_of(&l, ZmqConfig::default(), b"hello").await;
    sw.send(Bytes::from_static(b"last")).await.expect("send");
    assert_eq!(next(&mut cr).await, b"last");
    drop((l, sr, sw));
    match guard("client recv after the server dropped", cr.recv()).await {
        Ok(None) => {}
        Err(e) => panic!("expected a clean end, got {e:?}"),
        Ok(Some(f)) => panic!("unexpected frame {f:?}"),
    }
    assert!(cr.recv().await.expect("sticky").is_none());
    assert!(matches!(
        cw.send(Bytes::from_static(b"x")).await,
        Err(ZmqError::Closed)
    ));
}

#[tokio::test]
async fn dropping_the_listener_ends_its_connections_with_closed() {
    let l = listener(ZmqConfig::default()).await;
    let Pair {
        cr: _cr,
        mut sr,
        mut sw,
        ..
    } = client_of(&l, ZmqConfig::default(), b"hello").await;
    drop(l);
    assert!(matches!(
        guard("recv", sr.recv()).await,
        Err(ZmqError::Closed)
    ));
    assert!(matches!(
        sw.send(Bytes::from_static(b"x")).await,
        Err(ZmqError::Closed)
    ));
}

#[tokio::test]
async fn client_close_ends_the_server_reader_with_none_after_its_frames() {
    let l = listener(ZmqConfig::default()).await;
    let Pair {
        mut cr, cw, mut sr, ..
    } = client_of(&l, ZmqConfig::default(), b"hello").await;
    let mut cw = cw;
    cw.feed(Bytes::from_static(b"one")).await.expect("feed");
    cw.feed(Bytes::from_static(b"two")).await.expect("feed");
    cw.close().await.expect("close");
    assert_eq!(next(&mut sr).await, b"one");
    assert_eq!(next(&mut sr).await, b"two");
    assert!(guard("end", sr.recv()).await.expect("end").is_none());
    assert!(guard("own end", cr.recv()).await.expect("end").is_none());
}

#[tokio::test]
async fn server_close_ends_the_client_reader_and_the_listener_goes_on() {
    let l = listener(ZmqConfig::default()).await;
    let Pair {
        mut cr, mut sr, sw, ..
    } = client_of(&l, ZmqConfig::default(), b"hello").await;
    let mut sw = sw;
    sw.feed(Bytes::from_static(b"bye")).await.expect("feed");
    sw.close().await.expect("close");
    assert_eq!(next(&mut cr).await, b"bye");
    assert!(guard("end", cr.recv()).await.expect("end").is_none());
    assert!(guard("own end", sr.recv()).await.expect("end").is_none());
    let mut again = client_of(&l, ZmqConfig::default(), b"again").await;
    again
        .sw
        .send(Bytes::from_static(b"ok"))
        .await
        .expect("send");
    assert_eq!(next(&mut again.cr).await, b"ok");
}

#[tokio::test]
async fn a_client_that_vanishes_ends_its_server_reader() {
    let l = listener(ZmqConfig::default()).await;
    let mut raw = raw_dealer(&l).await;
    raw.send(ZmqMessage::from("hi")).await.expect("raw send");
    let (mut sr, _sw, _) = guard("accept", l.accept()).await.expect("accept");
    assert_eq!(next(&mut sr).await, b"hi");
    drop(raw);
    assert!(guard("end", sr.recv()).await.expect("end").is_none());
}

#[tokio::test]
async fn replies_reach_a_raw_dealer_as_one_part_messages() {
    let l = listener(ZmqConfig::default()).await;
    let mut raw = raw_dealer(&l).await;
    raw.send(ZmqMessage::from("ping")).await.expect("raw send");
    let (_sr, mut sw, _) = guard("accept", l.accept()).await.expect("accept");
    sw.send(Bytes::from_static(b"pong")).await.expect("send");
    let msg = guard("raw recv", raw.recv()).await.expect("raw recv");
    assert_eq!(msg.len(), 1);
    assert_eq!(msg.get(0).expect("a part").as_ref(), b"pong");
}
