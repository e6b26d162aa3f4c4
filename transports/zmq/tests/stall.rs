//! Peers of bound sockets that stop reading: the ZMTP gate cuts them at
//! the stall timeout, so zeromq drops what it queued for them, and the
//! other peers are served all along.
//!
//! The stalled peer is a raw TCP socket speaking ZMTP 3 with a 4 KiB
//! receive buffer, read until its subscription (or its connection) is
//! live and then never again. Its end is seen as the gate's reset (an
//! error on the socket), without reading. Publishing is paced (one
//! 256 KiB message per `PACE`, 50 MiB/s) so that what a stall window
//! holds is known; the healthy peer is never more than `WINDOW` messages
//! behind. Memory is this process's VmRSS; the tests take turns. Every
//! other wait is on an event, under a guard that fails the test.
use bytes::Bytes;
use sealrpc_zmq::gate::ZmtpGate;
use sealrpc_zmq::{ZmqConfig, ZmqListener, ZmqPublisher, ZmqSubscriber};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

const HANG_GUARD: Duration = Duration::from_secs(60);
const STALL: Duration = Duration::from_millis(300);
const MESSAGE: usize = 256 << 10;
const PACE: Duration = Duration::from_millis(5);
const WINDOW: u64 = 8;
/// Messages published once the stalled peer is cut (or would have been):
/// 150 MiB.
const AFTER: u64 = 600;
const MIB: usize = 1 << 20;
const PROBE: &[u8] = b"probe:";

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB as f64
}

fn cfg() -> ZmqConfig {
    ZmqConfig {
        max_frame: MESSAGE + 64,
        queue: 16,
        stall_timeout: STALL,
        ..ZmqConfig::default()
    }
}

/// Message `i`: `i` then filler, freshly allocated and written (a queued
/// copy costs its full size in RSS).
fn message(i: u64) -> Bytes {
    let mut v = vec![0xa5u8; MESSAGE];
    v[..8].copy_from_slice(&i.to_be_bytes());
    Bytes::from(v)
}

fn index(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"))
}

/// A short ZMTP frame (flags, one-byte size, body).
fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![flags, body.len() as u8];
    f.extend_from_slice(body);
    f
}

/// A raw ZMTP 3 peer (NULL mechanism) of socket type `kind` with a 4 KiB
/// receive buffer: greeting, READY, then `then`.
async fn raw_peer(endpoint: &str, kind: &str, then: &[u8]) -> TcpStream {
    let addr = endpoint.trim_start_matches("tcp://").parse().expect("addr");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut s = guard("raw connect", socket.connect(addr))
        .await
        .expect("raw connect");
    let mut out = vec![0u8; 64];
    out[0] = 0xff;
    out[9] = 0x7f;
    out[10] = 3;
    out[12..16].copy_from_slice(b"NULL");
    let mut ready = b"\x05READY\x0bSocket-Type".to_vec();
    ready.extend_from_slice(&(kind.len() as u32).to_be_bytes());
    ready.extend_from_slice(kind.as_bytes());
    out.extend(frame(0x04, &ready));
    out.extend_from_slice(then);
    s.write_all(&out).await.expect("raw handshake");
    s
}

/// Reads the raw peer until its scanner has counted a message, for up to
/// `within`: whether it did.
async fn saw_message(s: &mut TcpStream, scan: &mut ZmtpGate, within: Duration) -> bool {
    let mut buf = vec![0u8; 64 << 10];
    let seen = scan.messages();
    let until = Instant::now() + within;
    while scan.messages() == seen {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(n)) if n > 0 => scan.feed(&buf[..n]).expect("valid ZMTP"),
            Ok(end) => panic!("the raw peer's connection ended: {end:?}"),
        }
    }
    true
}

/// Waits for the gate's reset on a socket that is not read: the error
/// the socket then reports (`ConnectionReset` for a reset).
async fn reset(s: &TcpStream) -> std::io::Error {
    let ready = s.ready(Interest::ERROR).await.expect("ready");
    assert!(ready.is_error(), "{ready:?}");
    s.take_error().expect("SO_ERROR").expect("an error")
}

/// (PUB) A subscriber that stops reading while 256 KiB messages are
/// published: the gate cuts it (reset) once it has stopped reading for
/// `STALL` (300 ms), and not before; a healthy subscriber receives every
/// message during and after the stall; the 150 MiB published once it is
/// cut do not grow the process (bound asserted: 16 MiB), nor does the
/// whole run (48 MiB: before the cut zeromq can queue at most what 50 MiB/s
/// publishes until then, ~20 MiB, less what the kernel's buffers hold).
/// Without the cut, zeromq would hold all of it (measured: +187 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_at_the_stall_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let p = ZmqPublisher::bind("tcp://127.0.0.1:0", cfg())
        .await
        .expect("bind");
    let ep = p.local_endpoint();
    let mut healthy = guard("connect", ZmqSubscriber::connect(&ep, &["t\0"], cfg()))
        .await
        .expect("connect");
    let mut raw = raw_peer(&ep, "SUB", &frame(0x00, b"\x01t\0")).await;
    let mut scan = ZmtpGate::new(u64::MAX);

    // Both subscriptions are live once each has seen a probe.
    guard("subscriptions", async {
        let (mut h, mut r) = (false, false);
        for n in 0u64.. {
            let probe = Bytes::from(format!("probe:{n}"));
            p.publish(b"t\0", probe).await.expect("probe");
            h = h
                || matches!(
                    tokio::time::timeout(Duration::from_millis(20), healthy.recv()).await,
                    Ok(Ok((_, payload))) if payload.starts_with(PROBE)
                );
            r = r || saw_message(&mut raw, &mut scan, Duration::from_millis(20)).await;
            if h && r {
                return;
            }
        }
    })
    .await;

    // The healthy subscriber: how many messages it got, in order.
    let (got_tx, mut got) = watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            match healthy.recv().await {
                Ok((_, payload)) if payload.starts_with(PROBE) => {}
                Ok((_, payload)) => {
                    got_tx.send_if_modified(|n| {
                        let next = index(&payload) == *n;
                        *n += u64::from(next);
                        next
                    });
                }
                Err(_) => return,
            }
        }
    });

    let before = rss();
    let (mut sent, cut) = until_cut(&raw, async |n| publish(&p, &mut got, n).await).await;
    let at_cut = (rss(), sent);
    let mut pace = paced();
    for _ in 0..AFTER {
        pace.tick().await;
        publish(&p, &mut got, sent).await;
        sent += 1;
    }
    guard(
        "the healthy subscriber gets every message",
        got.wait_for(|n| *n == sent),
    )
    .await
    .expect("counter");
    let end = rss();
    let (grew, grew_after) = (end.saturating_sub(before), end.saturating_sub(at_cut.0));
    eprintln!(
        "stalled subscriber: cut after {:?} ({:?}), {} MiB published by then; \
         {sent} of 256 KiB published ({} MiB), all received by the healthy one; \
         RSS +{:.1} MiB in all, +{:.1} MiB after the cut",
        cut.as_ref().map(|c| c.0),
        cut.as_ref().map(|c| c.1.kind()),
        at_cut.1 / 4,
        sent / 4,
        mib(grew),
        mib(grew_after),
    );
    let (after, error) = cut.expect("the stalled subscriber was never cut");
    assert!(after >= STALL, "cut before the stall timeout: {after:?}");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(
        grew_after < 16 * MIB,
        "{AFTER} messages after the cut grew memory by {:.1} MiB",
        mib(grew_after)
    );
    assert!(grew < 48 * MIB, "memory grew by {:.1} MiB", mib(grew));
}

/// A tick every [`PACE`], late ticks not made up.
fn paced() -> tokio::time::Interval {
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    pace
}

/// Runs `step(0)`, `step(1)`, … one per [`PACE`] until the gate resets
/// `raw` (the stalled peer), for up to 10 × [`STALL`]: the steps run, and
/// when (since the first) and how the cut came, if it did.
async fn until_cut(
    raw: &TcpStream,
    mut step: impl AsyncFnMut(u64),
) -> (u64, Option<(Duration, std::io::Error)>) {
    let started = Instant::now();
    let mut pace = paced();
    let reset = reset(raw);
    tokio::pin!(reset);
    let mut n = 0;
    while started.elapsed() < STALL * 10 {
        tokio::select! {
            biased;
            e = &mut reset => return (n, Some((started.elapsed(), e))),
            _ = pace.tick() => {}
        }
        step(n).await;
        n += 1;
    }
    (n, None)
}

/// Publishes message `at` once the healthy subscriber is within `WINDOW`
/// of it.
async fn publish(p: &ZmqPublisher, got: &mut watch::Receiver<u64>, at: u64) {
    guard(
        "the healthy subscriber keeps receiving",
        got.wait_for(|n| n + WINDOW >= at),
    )
    .await
    .expect("counter");
    p.publish(b"t\0", message(at)).await.expect("publish");
}

/// (ROUTER) A DEALER that stops reading its replies: the gate cuts it at
/// the stall timeout (its virtual connection ends, the raw socket is
/// reset), while a healthy DEALER gets every frame sent to it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dealer_that_stops_reading_is_cut_at_the_stall_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let l = ZmqListener::bind("tcp://127.0.0.1:0", cfg())
        .await
        .expect("bind");
    let ep = l.local_endpoint();
    let raw = raw_peer(&ep, "DEALER", &frame(0x00, b"stalled")).await;
    let (mut stalled_r, mut stalled_w, _) = guard("accept", l.accept()).await.expect("accept");
    let (mut healthy_r, mut healthy_w) = guard("connect", sealrpc_zmq::connect(&ep, cfg()))
        .await
        .expect("connect");
    healthy_w
        .send(Bytes::from_static(b"healthy"))
        .await
        .expect("hello");
    let (_, mut to_healthy, _) = guard("accept", l.accept()).await.expect("accept");

    let (sent, cut) = until_cut(&raw, async |n| {
        // The stalled DEALER's frames are handed to zeromq (they are
        // dropped with it once it is cut); the healthy one reads each.
        let _ = stalled_w.feed(message(n)).await;
        to_healthy.send(message(n)).await.expect("send");
        let got = guard("recv", healthy_r.recv()).await.expect("recv");
        assert_eq!(index(&got.expect("a frame")), n);
    })
    .await;
    eprintln!(
        "stalled DEALER: cut after {:?} ({:?}); {sent} frames of 256 KiB to each",
        cut.as_ref().map(|c| c.0),
        cut.as_ref().map(|c| c.1.kind()),
    );
    let (after, error) = cut.expect("the stalled DEALER was never cut");
    assert!(after >= STALL, "cut before the stall timeout: {after:?}");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    // Its virtual connection ends (after the frame it sent), and the
    // healthy one is still served.
    assert_eq!(
        guard("recv", stalled_r.recv())
            .await
            .expect("recv")
            .as_deref(),
        Some(&b"stalled"[..])
    );
    assert!(guard("the end", stalled_r.recv())
        .await
        .expect("the end")
        .is_none());
    to_healthy.send(message(sent)).await.expect("send");
    let got = guard("recv", healthy_r.recv()).await.expect("recv");
    assert_eq!(index(&got.expect("a frame")), sent);
}
