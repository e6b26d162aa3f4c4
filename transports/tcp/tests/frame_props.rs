//! Property tests of the frame codec without sockets: arbitrary sequences
//! of frames written with `push_frame_with` and read back by `FrameReader`
//! from an in-memory stream cut into arbitrary reads (some of them
//! interrupted by a dropped `recv`) come back identical, then a clean end;
//! a stream cut anywhere gives the whole frames before the cut, then
//! `UnexpectedEof` (or a clean end at a frame boundary); a frame over the
//! reader's limit is refused from its prefix; a frame over the writer's
//! limit leaves the buffer as it was. (Arbitrary bytes: the `tcp_frames`
//! fuzz target.)
use bytes::BytesMut;
use futures::FutureExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use sealrpc_tcp::{push_frame_with, FrameError, FrameReader, TcpConfig, PREFIX_LEN};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

fn prop_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x7c9f_2a11),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A frame: mostly small, sometimes past the reader's 64 KiB growth step.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..300),
        1 => prop::collection::vec(any::<u8>(), 60_000..140_000),
    ]
}

fn frames() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(frame(), 0..12)
}

/// The read sizes, cycled; a zero means one `Pending` (which the harness
/// answers by dropping the `recv` future and starting a new one).
fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![1 => Just(0usize), 3 => 1..8usize, 3 => 1..5000usize, 1 => 1..200_000usize],
        1..20,
    )
    // Progress in every cycle.
    .prop_map(|mut v| {
        v.push(1);
        v
    })
}

/// A byte stream in memory, handed out in the given read sizes.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    reads: Vec<usize>,
    next: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let want = self.reads[self.next % self.reads.len()];
        self.next += 1;
        if want == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = want.min(buf.remaining()).min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn encode(frames: &[Vec<u8>], max_frame: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        push_frame_with(&mut buf, max_frame, |b: &mut BytesMut| {
            b.extend_from_slice(f);
            Ok::<(), FrameError>(())
        })
        .expect("push");
    }
    buf
}

/// Reads every frame until the end; a `Pending` drops the `recv` future
/// (cancel safety) and starts a new one.
fn read_all(
    data: &[u8],
    reads: Vec<usize>,
    cfg: TcpConfig,
) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let io = Chunked {
        data: data.to_vec(),
        pos: 0,
        reads,
        next: 0,
    };
    let mut reader = FrameReader::new(io, cfg);
    let mut got = Vec::new();
    loop {
        let Some(r) = reader.recv().now_or_never() else {
            continue;
        };
        match r {
            Ok(Some(f)) => got.push(f.to_vec()),
            Ok(None) => return (got, Ok(())),
            Err(e) => return (got, Err(e)),
        }
    }
}

fn cfg(max_frame: usize, read_buffer: usize) -> TcpConfig {
    TcpConfig {
        max_frame,
        read_buffer,
    }
}

proptest! {
    #![proptest_config(prop_config(128))]

    #[test]
    fn prop_frames_round_trip_in_any_chunking(
        frames in frames(),
        reads in reads(),
        slack in 0usize..3,
        read_buffer in prop_oneof![Just(0usize), 1..64usize, Just(8192usize)],
    ) {
        let max_frame = frames.iter().map(Vec::len).max().unwrap_or(0) + slack;
        let data = encode(&frames, max_frame);
        let (got, end) = read_all(&data, reads, cfg(max_frame, read_buffer));
        prop_assert!(end.is_ok(), "{:?}", end);
        prop_assert_eq!(got.len(), frames.len());
        prop_assert!(got == frames, "frames changed");
    }

    #[test]
    fn prop_a_stream_cut_anywhere_ends_after_the_whole_frames(
        frames in prop::collection::vec(frame(), 1..8),
        reads in reads(),
        cut in any::<prop::sample::Index>(),
    ) {
        let data = encode(&frames, usize::MAX);
        let n = cut.index(data.len());
        // The frames wholly before the cut, and whether it falls between two.
        let (mut whole, mut at) = (0, 0);
        while whole < frames.len() && at + PREFIX_LEN + frames[whole].len() <= n {
            at += PREFIX_LEN + frames[whole].len();
            whole += 1;
        }
        let (got, end) = read_all(&data[..n], reads, cfg(usize::MAX, 0));
        prop_assert!(got[..] == frames[..whole], "frames before the cut");
        if at == n {
            prop_assert!(end.is_ok(), "{:?}", end);
        } else {
            prop_assert!(matches!(end, Err(FrameError::UnexpectedEof)), "{:?}", end);
        }
    }

    #[test]
    fn prop_a_frame_over_the_readers_limit_is_refused_from_its_prefix(
        before in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..5),
        over in prop_oneof![2 => Just(1usize), 4 => 1usize..1000, 1 => Just(u32::MAX as usize - 100)],
        announced_only in any::<bool>(),
        reads in reads(),
    ) {
        let max_frame = 100;
        let mut data = encode(&before, max_frame);
        let len = max_frame + over;
        data.extend_from_slice(&(len as u32).to_be_bytes());
        // Up to 4 GiB announced; only small bodies are actually sent.
        if !announced_only && len < 10_000 {
            data.extend_from_slice(&vec![0xab; len]);
        }
        let (got, end) = read_all(&data, reads, cfg(max_frame, 0));
        prop_assert!(got == before);
        prop_assert!(
            matches!(end, Err(FrameError::TooLarge { len: l, max: 100 }) if l == len),
            "{:?}", end
        );
    }

    #[test]
    fn prop_a_frame_over_the_writers_limit_leaves_the_buffer_unchanged(
        before in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..5),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        max_frame in 0usize..300,
    ) {
        let mut buf = encode(&before, 100);
        let was = buf.clone();
        let r = push_frame_with(&mut buf, max_frame, |b: &mut BytesMut| {
            b.extend_from_slice(&payload);
            Ok::<(), FrameError>(())
        });
        if payload.len() > max_frame {
            prop_assert!(
                matches!(r, Err(FrameError::TooLarge { len, max }) if len == payload.len() && max == max_frame),
                "{:?}", r
            );
            prop_assert_eq!(buf, was);
        } else {
            prop_assert!(r.is_ok());
            prop_assert_eq!(&buf[..was.len()], &was[..]);
            prop_assert_eq!(&buf[was.len()..was.len() + PREFIX_LEN], &(payload.len() as u32).to_be_bytes()[..]);
            prop_assert_eq!(&buf[was.len() + PREFIX_LEN..], &payload[..]);
        }
    }
}
