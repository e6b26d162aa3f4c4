//! Shared by the transport fuzz targets: an allocation probe, a small
//! deterministic generator for chunk sizes, and an in-memory reader that
//! hands out its bytes in those chunks.
#![allow(dead_code)]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Records the largest single allocation (or reallocation) requested
/// while [`Probe::start`] is on, so "refused before allocating" is checked
/// rather than assumed.
pub struct Probe;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

impl Probe {
    /// Starts recording from zero.
    pub fn start() {
        LARGEST.store(0, Ordering::Relaxed);
        TRACKING.store(true, Ordering::Relaxed);
    }

    /// Stops recording; the largest allocation seen since `start`.
    pub fn stop() -> usize {
        TRACKING.store(false, Ordering::Relaxed);
        LARGEST.load(Ordering::Relaxed)
    }

    fn note(size: usize) {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(size, Ordering::Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Probe::note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Probe::note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Probe::note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

/// xorshift64*: chunk sizes and pending/cancel decisions, a pure function
/// of the seed taken from the input (so every crash reproduces).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    /// A chunk size in `1..=max`, small ones more often.
    pub fn chunk(&mut self, max: usize) -> usize {
        let max = max.max(1);
        let r = self.next();
        let cap = match r % 4 {
            0 => 1,
            1 => 16,
            2 => 512,
            _ => max,
        };
        1 + (r >> 8) as usize % cap.min(max)
    }
}

/// How an in-memory reader hands out its bytes.
#[derive(Clone, Copy, Debug)]
pub enum Chunking {
    /// As much as the caller asks for.
    Whole,
    /// One byte per read.
    Bytes,
    /// Sizes from the generator, with a `Pending` now and then.
    Random(u64),
}

impl Chunking {
    pub fn from_bits(b: u8, seed: u64) -> Chunking {
        match b % 4 {
            0 => Chunking::Whole,
            1 => Chunking::Bytes,
            _ => Chunking::Random(seed),
        }
    }
}

/// Bytes in memory, read in chunks; then end of stream. Returns `Pending`
/// (after waking the task) at random points under [`Chunking::Random`].
pub struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunking: Chunking,
    rng: Rng,
    /// The last poll returned `Pending`: the next one makes progress.
    pended: bool,
}

impl Chunked {
    pub fn new(data: Vec<u8>, chunking: Chunking) -> Chunked {
        let seed = match chunking {
            Chunking::Random(s) => s,
            _ => 0,
        };
        Chunked {
            data,
            pos: 0,
            chunking,
            rng: Rng::new(seed),
            pended: false,
        }
    }

    /// The next read: `None` for `Pending`, else up to `room` bytes.
    fn take(&mut self, room: usize) -> Option<&[u8]> {
        let n = match self.chunking {
            Chunking::Whole => room,
            Chunking::Bytes => 1,
            Chunking::Random(_) => {
                if !self.pended && self.rng.one_in(4) {
                    self.pended = true;
                    return None;
                }
                self.pended = false;
                self.rng.chunk(4096)
            }
        };
        let n = n.min(room).min(self.data.len() - self.pos);
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Some(out)
    }
}

impl tokio::io::AsyncRead for Chunked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let room = buf.remaining();
        match self.take(room) {
            None => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
            Some(bytes) => {
                buf.put_slice(bytes);
                std::task::Poll::Ready(Ok(()))
            }
        }
    }
}

impl futures::io::AsyncRead for Chunked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let room = buf.len();
        match self.take(room) {
            None => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
            Some(bytes) => {
                let n = bytes.len();
                buf[..n].copy_from_slice(bytes);
                std::task::Poll::Ready(Ok(n))
            }
        }
    }
}
