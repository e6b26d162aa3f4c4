//! An in-process request/reply benchmark (`sealrpc bench`): a server and a
//! client in one process on loopback, per transport, payload size and mode.
//!
//! - **sealed**: [`Server`](crate::channel::Server) and
//!   [`Client`](crate::channel::Client) with a shared key, calling
//!   `bench.echo` (which returns its body).
//! - **raw**: the same transport with no envelope: frames of the payload
//!   size echoed by a server task, batched the way the channel batches
//!   ([`push_frame`](crate::transport::push_frame) into one buffer, one
//!   writer task calling `send_batch`). Raw rows run no tracing code at all,
//!   whatever the `tracing` column says: they are the floor.
//! - **loop**: raw mode's loop with each frame sealed and opened, and the
//!   loads MessagePack-encoded, exactly as the channel does, but none of
//!   the channel's machinery: a minimal hand-written sealed echo, the floor
//!   for a sealed transport (see `sealed_loop`).
//!
//! Each combination gets a warm-up (`min(requests, 200)` round trips, not
//! measured), a latency run (one request in flight,
//! `min(requests, 5000)` sequential round trips) and a throughput run
//! (`inflight` requests in flight, `requests` requests in all).
//!
//! [`minions`] is the other benchmark (`sealrpc bench --minions N`): N
//! authenticated minions against a master process, one job to all.
pub mod minions;
mod plot;
mod raw;
mod run;
mod sealed;
mod sealed_loop;
mod stats;

pub use plot::render_svg;
pub use run::run;
pub use stats::render_table;

use serde::Serialize;

/// Round trips in the latency run, at most.
pub const LATENCY_ROUND_TRIPS: usize = 5000;

/// Unmeasured round trips before the latency run, at most.
pub const WARMUP_ROUND_TRIPS: usize = 200;

/// A transport to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Zmq,
    Ws,
}

impl Transport {
    /// Every transport, in table order.
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::Zmq, Transport::Ws];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Zmq => "zmq",
            Transport::Ws => "ws",
        }
    }

    /// A loopback URL on an ephemeral port.
    pub(crate) fn url(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp://127.0.0.1:0",
            Transport::Zmq => "zmq://127.0.0.1:0",
            Transport::Ws => "ws://127.0.0.1:0/sealrpc",
        }
    }
}

/// With or without the sealed envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Sealed,
    Raw,
    Loop,
}

impl Mode {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sealed => "sealed",
            Mode::Raw => "raw",
            Mode::Loop => "loop",
        }
    }
}

/// What to run: every transport × size × mode.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub transports: Vec<Transport>,
    /// Payload sizes in bytes (the request body; the reply is as large).
    pub sizes: Vec<usize>,
    /// Requests in flight in the throughput run (at least 1).
    pub inflight: usize,
    /// Requests in the throughput run (at least 1).
    pub requests: usize,
    pub modes: Vec<Mode>,
    /// Sealed mode traces every call (100% sampling) into an in-memory
    /// exporter. Needs the `otel` feature.
    pub tracing: bool,
}

/// One row: one transport, size, mode and tracing setting.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub transport: &'static str,
    pub size: usize,
    pub mode: &'static str,
    /// "on" or "off" (raw rows run no tracing code either way).
    pub tracing: &'static str,
    pub inflight: usize,
    pub requests: usize,
    /// Round-trip latency percentiles with one request in flight, in µs.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Requests per second with `inflight` in flight.
    pub req_per_s: f64,
    /// Payload bytes both ways (request body + reply body, envelopes and
    /// frame prefixes not counted), per second, in MiB (2^20 bytes).
    pub mib_per_s: f64,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("--tracing on needs sealrpc built with the \"otel\" feature")]
    TracingUnavailable,
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("nothing to run: no transport, size or mode")]
    Empty,
    #[error("a {size}-byte payload exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("{transport} {mode}: {source}")]
    Run {
        transport: &'static str,
        mode: &'static str,
        source: crate::Error,
    },
    #[error("{transport} {mode}: reply of {got} bytes to a {sent}-byte request")]
    Mismatch {
        transport: &'static str,
        mode: &'static str,
        sent: usize,
        got: usize,
    },
}
