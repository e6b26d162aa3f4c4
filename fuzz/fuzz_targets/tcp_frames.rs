//! The TCP transport's frame reader on arbitrary bytes, without sockets.
//!
//! Covers `transports/tcp/src/reader.rs`: `FrameReader::recv` and its
//! check-then-split `parse`, the code every byte a TCP peer sends goes
//! through before anything is authenticated. The reader runs on an
//! in-memory `AsyncRead` (`FrameReader::new` is generic; TCP connections
//! use the same code on a socket's read half), polled by hand with a no-op
//! waker: no runtime, no sockets.
//!
//! Input: `[config, seed_lo, seed_hi, stream...]`. `config` picks the frame
//! limit (small: 0 to 4096 bytes), the initial read buffer and how the
//! stream is cut into reads (whole, byte by byte, or random sizes with
//! `Pending`s; at a `Pending` the `recv` future is sometimes dropped and a
//! new one started, which its cancel safety must survive). Checks:
//! - no panic;
//! - no single allocation inside `recv` larger than the frame limit plus
//!   the prefix and the buffer's growth slack (`alloc_bound`): a length over
//!   the limit is refused from the 4-byte prefix, before any allocation;
//! - the frames returned, written back with the writer's `push_frame_with`,
//!   give back exactly the bytes consumed, each within the limit;
//! - the end is the right one: `Ok(None)` only after the whole stream,
//!   `TooLarge` with the announced length only where the next prefix
//!   announces more than the limit, `UnexpectedEof` only for a stream cut
//!   inside a frame (or its prefix).
#![no_main]
#[path = "support/mod.rs"]
mod support;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sealrpc_tcp::{push_frame_with, FrameError, FrameReader, TcpConfig, PREFIX_LEN};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use support::{Chunked, Chunking, Probe, Rng};

#[global_allocator]
static ALLOC: Probe = Probe;

const MAX_FRAMES: [usize; 8] = [0, 1, 3, 16, 64, 255, 1024, 4096];
const READ_BUFFERS: [usize; 4] = [0, 1, 64, 8192];

/// The largest single allocation `recv` may make. The buffer is grown for
/// at most one frame at a time (prefix + limit); `BytesMut` may round a
/// growth up to twice the old capacity, and `read_buf` asks for 64 bytes
/// when the buffer is full; the initial buffer is the configured size.
fn alloc_bound(max_frame: usize, read_buffer: usize) -> usize {
    2 * (PREFIX_LEN + max_frame + 64) + read_buffer
}

/// One `recv`, polled by hand. At a `Pending`, sometimes drops the future
/// and starts a new one (the reader must lose nothing).
fn recv(reader: &mut FrameReader<Chunked>, rng: &mut Rng) -> Result<Option<BytesMut>, FrameError> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let mut fut = pin!(reader.recv());
        loop {
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(r) => return r,
                Poll::Pending if rng.one_in(2) => break,
                Poll::Pending => {}
            }
        }
    }
}

fn be_u32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

fuzz_target!(|data: &[u8]| {
    let [config, lo, hi, stream @ ..] = data else {
        return;
    };
    let max_frame = MAX_FRAMES[usize::from(config & 7)];
    let read_buffer = READ_BUFFERS[usize::from((config >> 3) & 3)];
    let seed = u64::from(u16::from_le_bytes([*lo, *hi]));
    let chunking = Chunking::from_bits(config >> 5, seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let cfg = TcpConfig {
        max_frame,
        read_buffer,
    };
    let bound = alloc_bound(max_frame, read_buffer);

    let io = Chunked::new(stream.to_vec(), chunking);
    Probe::start();
    let mut reader = FrameReader::new(io, cfg);
    let largest = Probe::stop();
    assert!(largest <= bound, "new: {largest} > {bound}");

    // The frames read, written back as the writer frames them.
    let mut echo = BytesMut::new();
    let end = loop {
        Probe::start();
        let got = recv(&mut reader, &mut rng);
        let largest = Probe::stop();
        assert!(
            largest <= bound,
            "recv allocated {largest} bytes with max_frame {max_frame} (bound {bound})"
        );
        match got {
            Ok(Some(frame)) => {
                assert!(frame.len() <= max_frame, "{} > {max_frame}", frame.len());
                push_frame_with(&mut echo, max_frame, |b: &mut BytesMut| {
                    b.extend_from_slice(&frame);
                    Ok::<(), FrameError>(())
                })
                .expect("a frame the reader returned is within the writer's limit");
            }
            end => break end,
        }
    };
    assert!(echo.len() <= stream.len());
    assert_eq!(&echo[..], &stream[..echo.len()], "frames do not round-trip");
    let rest = &stream[echo.len()..];
    match end {
        Ok(None) => assert!(rest.is_empty(), "clean end with {} bytes left", rest.len()),
        Err(FrameError::TooLarge { len, max }) => {
            assert!(rest.len() >= PREFIX_LEN);
            assert_eq!((len, max), (be_u32(rest), max_frame));
            assert!(len > max_frame);
        }
        Err(FrameError::UnexpectedEof) => {
            assert!(!rest.is_empty());
            if rest.len() >= PREFIX_LEN {
                let len = be_u32(rest);
                assert!(len <= max_frame && rest.len() < PREFIX_LEN + len);
            }
        }
        other => panic!("unexpected end: {other:?}"),
    }
    // Ends are not sticky in this reader, but must stay ends: nothing
    // more is ever returned.
    if let Ok(Some(frame)) = recv(&mut reader, &mut rng) {
        panic!("a frame after the end: {} bytes", frame.len());
    }
});
