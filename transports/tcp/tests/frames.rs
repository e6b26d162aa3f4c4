//! Frame transport over real loopback sockets: round trips, batching, size
//! limits in both directions, EOF handling, graceful shutdown and the
//! buffer-restoring `push_frame_with`.
//!
//! No test sleeps or measures time. The one `timeout` below is a hang guard
//! (it turns "waits forever for 4 GiB" into a failure), not a timing check.
use bytes::BytesMut;
use futures::FutureExt;
use sealrpc_tcp::{
    connect, push_frame_with, FrameError, FrameReader, FrameWriter, Listener, TcpConfig,
    DEFAULT_MAX_FRAME, PREFIX_LEN,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------- allocation probe

/// Records the largest single allocation (or reallocation) requested by
/// anything in this test binary, so "refused before allocating" can be
/// checked rather than assumed.
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

/// Well above anything a legitimate test here allocates (frames of at most
/// 16 MiB, possibly doubled by buffer growth), far below 4 GiB.
const ALLOC_CEILING: usize = 256 * 1024 * 1024;

// ---------------------------------------------------------------- helpers

/// Turns "waits forever" into a test failure. Never reached by a correct
/// implementation; not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn cfg(max_frame: usize) -> TcpConfig {
    TcpConfig {
        max_frame,
        read_buffer: 1024,
    }
}

/// A connected pair: (client reader, client writer, server reader, server writer).
async fn framed_pair(c: TcpConfig) -> (FrameReader, FrameWriter, FrameReader, FrameWriter) {
    let listener = Listener::bind("127.0.0.1:0", c).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, server) = tokio::join!(connect(addr, c), listener.accept());
    let (cr, cw) = client.expect("connect");
    let (sr, sw, peer) = server.expect("accept");
    assert_eq!(cr.peer_addr().expect("peer"), addr);
    assert_eq!(sr.peer_addr().expect("peer"), peer);
    (cr, cw, sr, sw)
}

/// A framed server reader whose peer is a raw socket we write bytes to.
async fn raw_to_framed(c: TcpConfig) -> (TcpStream, FrameReader, FrameWriter) {
    let listener = Listener::bind("127.0.0.1:0", c).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (raw, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (r, w, _) = server.expect("accept");
    (raw.expect("raw connect"), r, w)
}

/// A framed client writer whose peer is a raw socket we read bytes from.
async fn framed_to_raw(c: TcpConfig) -> (FrameReader, FrameWriter, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(connect(addr, c), listener.accept());
    let (r, w) = client.expect("connect");
    (r, w, accepted.expect("accept").0)
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn prefixed(p: &[u8]) -> Vec<u8> {
    let mut v = (p.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(p);
    v
}

async fn next(r: &mut FrameReader) -> Vec<u8> {
    r.recv()
        .await
        .expect("recv")
        .expect("a frame, not EOF")
        .to_vec()
}

// ---------------------------------------------------------------- round trips

#[tokio::test]
async fn many_frames_round_trip_including_empty_and_max_size() {
    let (_cr, mut cw, mut sr, _sw) = framed_pair(cfg(DEFAULT_MAX_FRAME)).await;
    let mut frames: Vec<Vec<u8>> = vec![Vec::new()];
    frames.extend((0..500).map(|i| payload((i * 37) % 3000, i as u8)));
    frames.push(Vec::new());
    frames.push(payload(DEFAULT_MAX_FRAME, 9));
    frames.push(payload(1, 1));
    frames.push(payload(70_000, 2));
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for f in &sent {
            cw.send(f).await.expect("send");
        }
        cw.shutdown().await.expect("shutdown");
    });
    for (i, want) in frames.iter().enumerate() {
        let got = sr.recv().await.expect("recv").expect("frame");
        assert_eq!(got.len(), want.len(), "frame {i}");
        assert!(got[..] == want[..], "frame {i} content");
    }
    assert!(sr.recv().await.expect("clean EOF").is_none());
    writer.await.expect("writer task");
}

#[tokio::test]
async fn both_directions_work_at_once() {
    let (mut cr, mut cw, mut sr, mut sw) = framed_pair(cfg(4096)).await;
    cw.send(b"ping").await.expect("send");
    assert_eq!(next(&mut sr).await, b"ping");
    sw.send(b"pong").await.expect("send");
    assert_eq!(next(&mut cr).await, b"pong");
}

#[tokio::test]
async fn frames_are_length_prefixed_big_endian_on_the_wire() {
    let (_r, mut w, mut raw) = framed_to_raw(cfg(4096)).await;
    let frames: [&[u8]; 4] = [b"", b"a", &[0xff; 300], b"last"];
    for f in frames {
        w.push(f).expect("push");
    }
    w.shutdown().await.expect("shutdown");
    let mut bytes = Vec::new();
    raw.read_to_end(&mut bytes).await.expect("read");
    let want: Vec<u8> = frames.iter().flat_map(|f| prefixed(f)).collect();
    assert_eq!(bytes, want);
    assert_eq!(&bytes[..4], &[0, 0, 0, 0]);
    assert_eq!(&bytes[9..13], &[0, 0, 1, 44]);
}

#[tokio::test]
async fn frames_split_into_single_bytes_are_reassembled() {
    let (mut raw, mut r, _w) = raw_to_framed(cfg(4096)).await;
    let frames = [payload(0, 0), payload(5, 1), payload(600, 2)];
    let stream: Vec<u8> = frames.iter().flat_map(|f| prefixed(f)).collect();
    let feeder = tokio::spawn(async move {
        for b in stream {
            raw.write_all(&[b]).await.expect("write");
            raw.flush().await.expect("flush");
        }
        raw.shutdown().await.expect("fin");
        raw
    });
    for f in &frames {
        assert_eq!(&next(&mut r).await, f);
    }
    assert!(r.recv().await.expect("EOF").is_none());
    drop(feeder.await.expect("feeder"));
}

#[tokio::test]
async fn several_pushes_then_one_flush() {
    let (_cr, mut cw, mut sr, _sw) = framed_pair(cfg(4096)).await;
    let frames = [payload(10, 1), Vec::new(), payload(4096, 2), payload(3, 3)];
    let mut expected_pending = 0;
    for f in &frames {
        cw.push(f).expect("push");
        expected_pending += PREFIX_LEN + f.len();
        assert_eq!(cw.pending(), expected_pending);
    }
    cw.flush().await.expect("flush");
    assert_eq!(cw.pending(), 0);
    for f in &frames {
        assert_eq!(&next(&mut sr).await, f);
    }
    // Flushing nothing is a no-op, and the writer keeps working.
    cw.flush().await.expect("empty flush");
    cw.send(b"after").await.expect("send");
    assert_eq!(next(&mut sr).await, b"after");
}

#[tokio::test]
async fn write_frames_sends_a_batch_built_with_push_frame_with() {
    let (_cr, mut cw, mut sr, _sw) = framed_pair(cfg(4096)).await;
    cw.push(b"queued first").expect("push");
    let mut batch = BytesMut::with_capacity(8192);
    for i in 0..5u8 {
        push_frame_with(&mut batch, cw.max_frame(), |b: &mut BytesMut| {
            b.extend_from_slice(&[i; 7]);
            Ok::<(), FrameError>(())
        })
        .expect("push_frame_with");
    }
    let cap = batch.capacity();
    cw.write_frames(&mut batch).await.expect("write_frames");
    assert!(batch.is_empty());
    assert_eq!(batch.capacity(), cap, "capacity kept for reuse");
    assert_eq!(cw.pending(), 0);
    assert_eq!(
        next(&mut sr).await,
        b"queued first",
        "pending frames go first"
    );
    for i in 0..5u8 {
        assert_eq!(next(&mut sr).await, [i; 7]);
    }
}

// ---------------------------------------------------------------- size limits

#[tokio::test]
async fn inbound_4_gib_announcement_is_too_large_without_allocating() {
    let (mut raw, mut r, _w) = raw_to_framed(TcpConfig::default()).await;
    // The header alone, and the connection stays open: an implementation
    // that waited for the body would never return.
    raw.write_all(&[0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    raw.flush().await.expect("flush");
    LARGEST.store(0, Ordering::Relaxed);
    let res = tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("recv returned an error instead of waiting for 4 GiB");
    let largest = LARGEST.load(Ordering::Relaxed);
    match res {
        Err(FrameError::TooLarge { len, max }) => {
            assert_eq!(len, 0xffff_ffff);
            assert_eq!(max, DEFAULT_MAX_FRAME);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        largest < ALLOC_CEILING,
        "an allocation of {largest} bytes was requested"
    );
    // The stream cannot be resynchronised: it keeps refusing.
    assert!(matches!(r.recv().await, Err(FrameError::TooLarge { .. })));
    drop(raw);
}

#[tokio::test]
async fn inbound_limit_is_exact() {
    let max = 1000;
    let (mut raw, mut r, _w) = raw_to_framed(cfg(max)).await;
    raw.write_all(&prefixed(&payload(max, 4)))
        .await
        .expect("write");
    assert_eq!(
        next(&mut r).await,
        payload(max, 4),
        "exactly the limit is accepted"
    );
    raw.write_all(&((max + 1) as u32).to_be_bytes())
        .await
        .expect("write");
    // Hang guard: a reader that accepted the announcement would wait for the body.
    let res = tokio::time::timeout(HANG_GUARD, r.recv())
        .await
        .expect("recv returned instead of waiting for the body");
    match res {
        Err(FrameError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn outbound_frame_over_the_limit_is_refused_and_the_connection_survives() {
    let max = 2048;
    let (_cr, mut cw, mut sr, _sw) = framed_pair(cfg(max)).await;
    cw.push(b"before").expect("push");
    let pending = cw.pending();
    match cw.push(&vec![1; max + 1]) {
        Err(FrameError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        cw.pending(),
        pending,
        "nothing of the refused frame is queued"
    );
    match cw.send(&vec![2; max + 100]).await {
        Err(FrameError::TooLarge { len, .. }) => assert_eq!(len, max + 100),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // push_with whose fill writes too much is refused the same way.
    let r = cw.push_with(|b: &mut BytesMut| {
        b.extend_from_slice(&vec![3; max + 1]);
        Ok::<(), FrameError>(())
    });
    assert!(matches!(r, Err(FrameError::TooLarge { .. })));
    assert_eq!(cw.pending(), pending);
    cw.send(&payload(max, 5))
        .await
        .expect("a max-size frame still goes through");
    assert_eq!(next(&mut sr).await, b"before");
    assert_eq!(next(&mut sr).await, payload(max, 5));
    cw.send(b"next").await.expect("send");
    assert_eq!(next(&mut sr).await, b"next");
}

// ---------------------------------------------------------------- EOF and shutdown

#[tokio::test]
async fn eof_inside_a_frame_body_is_unexpected_eof() {
    let (mut raw, mut r, _w) = raw_to_framed(cfg(4096)).await;
    raw.write_all(&prefixed(b"whole")).await.expect("write");
    raw.write_all(&[0, 0, 0, 10, b'a', b'b', b'c'])
        .await
        .expect("write");
    raw.shutdown().await.expect("fin");
    assert_eq!(next(&mut r).await, b"whole");
    assert!(matches!(r.recv().await, Err(FrameError::UnexpectedEof)));
}

#[tokio::test]
async fn eof_inside_the_length_prefix_is_unexpected_eof() {
    let (mut raw, mut r, _w) = raw_to_framed(cfg(4096)).await;
    raw.write_all(&[0, 0]).await.expect("write");
    raw.shutdown().await.expect("fin");
    assert!(matches!(r.recv().await, Err(FrameError::UnexpectedEof)));
}

#[tokio::test]
async fn eof_after_a_prefix_announcing_an_empty_frame_is_clean() {
    let (mut raw, mut r, _w) = raw_to_framed(cfg(4096)).await;
    raw.write_all(&[0, 0, 0, 0]).await.expect("write");
    raw.shutdown().await.expect("fin");
    assert_eq!(next(&mut r).await, b"");
    assert!(r.recv().await.expect("clean EOF").is_none());
}

#[tokio::test]
async fn clean_eof_between_frames_is_none() {
    let (_cr, cw, mut sr, _sw) = framed_pair(cfg(4096)).await;
    cw.shutdown().await.expect("shutdown");
    assert!(sr.recv().await.expect("clean EOF").is_none());
    assert!(
        sr.recv().await.expect("still EOF").is_none(),
        "EOF is sticky"
    );

    let (mut raw, mut r, _w) = raw_to_framed(cfg(4096)).await;
    raw.write_all(&prefixed(b"one")).await.expect("write");
    raw.shutdown().await.expect("fin");
    assert_eq!(next(&mut r).await, b"one");
    assert!(r.recv().await.expect("clean EOF").is_none());
}

#[tokio::test]
async fn shutdown_flushes_queued_frames_before_fin() {
    let (_cr, mut cw, mut sr, _sw) = framed_pair(cfg(DEFAULT_MAX_FRAME)).await;
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| payload(i * 1000, i as u8))
        .chain([payload(4 << 20, 7)])
        .collect();
    for f in &frames {
        cw.push(f).expect("push");
    }
    assert!(cw.pending() > 4 << 20);
    // The reader runs concurrently: 4 MiB does not fit in socket buffers.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(f) = sr.recv().await.expect("recv") {
            got.push(f.to_vec());
        }
        got
    });
    cw.shutdown().await.expect("shutdown");
    let got = reader.await.expect("reader");
    assert_eq!(got.len(), frames.len());
    assert!(
        got == frames,
        "every queued frame arrived, in order, before EOF"
    );
}

#[tokio::test]
async fn peer_sees_eof_when_the_framed_writer_shuts_down() {
    let (_r, mut w, mut raw) = framed_to_raw(cfg(4096)).await;
    w.push(b"bye").expect("push");
    w.shutdown().await.expect("shutdown");
    let mut bytes = Vec::new();
    raw.read_to_end(&mut bytes).await.expect("read to EOF");
    assert_eq!(bytes, prefixed(b"bye"));
}

// ---------------------------------------------------------------- cancel safety

#[tokio::test]
async fn recv_cancelled_mid_frame_loses_nothing() {
    let (mut raw, mut r, _w) = raw_to_framed(cfg(4096)).await;
    let first = prefixed(b"first");
    let second = prefixed(&payload(100, 3));
    let mut chunk = first.clone();
    chunk.extend_from_slice(&second[..50]);
    raw.write_all(&chunk).await.expect("write");
    assert_eq!(next(&mut r).await, b"first");
    // Poll once and drop: the partial second frame must stay buffered.
    assert!(
        r.recv().now_or_never().is_none(),
        "the second frame is not complete yet"
    );
    raw.write_all(&second[50..]).await.expect("write");
    assert_eq!(next(&mut r).await, payload(100, 3));
}

// ---------------------------------------------------------------- push_frame_with

#[derive(Debug, PartialEq)]
enum FillError {
    Frame(String),
    Fill(&'static str),
}

impl From<FrameError> for FillError {
    fn from(e: FrameError) -> Self {
        FillError::Frame(e.to_string())
    }
}

#[test]
fn push_frame_with_restores_the_buffer_when_fill_fails() {
    let mut buf = BytesMut::from(&b"earlier"[..]);
    push_frame_with(&mut buf, 64, |b: &mut BytesMut| {
        b.extend_from_slice(b"ok");
        Ok::<(), FillError>(())
    })
    .expect("push");
    let before = buf.clone();
    assert_eq!(&before[..], b"earlier\x00\x00\x00\x02ok");

    let r = push_frame_with(&mut buf, 64, |b: &mut BytesMut| {
        b.extend_from_slice(b"half-written payload");
        Err(FillError::Fill("encryption failed"))
    });
    assert_eq!(r, Err(FillError::Fill("encryption failed")));
    assert_eq!(buf, before, "buffer restored after a failing fill");

    // Over the limit: restored, TooLarge converted through From<FrameError>.
    let mut buf = before.clone();
    let r = push_frame_with(&mut buf, 64, |b: &mut BytesMut| {
        b.extend_from_slice(&[0; 65]);
        Ok::<(), FillError>(())
    });
    assert_eq!(
        r,
        Err(FillError::Frame(
            FrameError::TooLarge { len: 65, max: 64 }.to_string()
        ))
    );
    assert_eq!(buf, before);

    // Exactly at the limit, and empty, both fine.
    push_frame_with(&mut buf, 64, |b: &mut BytesMut| {
        b.extend_from_slice(&[9; 64]);
        Ok::<(), FillError>(())
    })
    .expect("at the limit");
    push_frame_with(&mut buf, 64, |_: &mut BytesMut| Ok::<(), FillError>(())).expect("empty");
    let mut want = before.to_vec();
    want.extend_from_slice(&prefixed(&[9; 64]));
    want.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(&buf[..], &want[..]);
}

#[tokio::test]
async fn push_with_failure_leaves_the_writer_usable() {
    let (_cr, mut cw, mut sr, _sw) = framed_pair(cfg(4096)).await;
    cw.push(b"kept").expect("push");
    let pending = cw.pending();
    let r = cw.push_with(|b: &mut BytesMut| {
        b.extend_from_slice(b"garbage");
        Err(FillError::Fill("nope"))
    });
    assert_eq!(r, Err(FillError::Fill("nope")));
    assert_eq!(cw.pending(), pending);
    cw.push_with(|b: &mut BytesMut| {
        b.extend_from_slice(b"filled in place");
        Ok::<(), FillError>(())
    })
    .expect("push_with");
    cw.flush().await.expect("flush");
    assert_eq!(next(&mut sr).await, b"kept");
    assert_eq!(next(&mut sr).await, b"filled in place");
}
