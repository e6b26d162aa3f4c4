//! Settings shared by clients and servers.
use crate::error::Error;
use crate::keys::{Key, Keyring};
use crate::telemetry::Telemetry;
use crate::transport::Endpoint;
use std::sync::Arc;
use std::time::Duration;

/// How a channel end seals, opens, times out and traces.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// The key this end seals with.
    pub key: Key,
    /// Keys accepted from the peer (defaults to `key` alone).
    pub keyring: Arc<Keyring>,
    /// Envelope time-to-live: older (or further in the future) is refused.
    pub ttl: Duration,
    /// Largest envelope sent or accepted (also the transport frame limit).
    pub max_frame: usize,
    /// Default deadline of a call (client side).
    pub timeout: Duration,
    /// Calls in flight per client before `call` waits (backpressure).
    pub max_in_flight: usize,
    /// Tracing; `None` = off (no spans, nothing injected or extracted).
    pub telemetry: Option<Telemetry>,
    /// Client reconnection after the connection ends; `None` = never.
    pub reconnect: Option<ReconnectPolicy>,
    /// Node identity: `Some` runs a Noise XX handshake on every connection
    /// and seals with its per-direction keys (then `key` is unused);
    /// `None` = shared-key mode (benchmarks, simple setups).
    pub identity: Option<super::Identity>,
    /// Longest a handshake may take (a peer that stalls it is dropped).
    /// On a ZeroMQ server (ROUTER and the master's PUB) also how long an
    /// accepted peer may stop reading what is sent to it before it is cut
    /// (`sealrpc_zmq::ZmqConfig::stall_timeout`).
    pub handshake_timeout: Duration,
    /// Attempts per call (client side), as Salt's `tries`: with more than
    /// one, a call whose connection fails, or that gets no reply within
    /// `timeout / tries`, is sent again (on the same or a new connection)
    /// until `timeout`. Every attempt carries the call's retry key and the
    /// server runs the handler once per key, so a retry never runs it
    /// twice. 1 (the default) = no retries and no key on the wire.
    pub tries: u32,
    /// Server side: the most retryable calls remembered at once (running,
    /// or done and kept until their caller's deadline has passed, plus a
    /// second). A retryable call beyond it is refused without running
    /// (`Error::Overloaded`). About 150 bytes each, plus `retry_bytes`.
    pub retry_entries: usize,
    /// Server side: the most reply bytes kept for retries.
    pub retry_bytes: usize,
}

/// Jittered exponential backoff between failed reconnect attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The wait after the first failed attempt (before jitter).
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    /// 100 ms doubling up to 5 s.
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl ChannelConfig {
    /// Defaults: 60 s TTL, 16 MiB frames, 30 s call timeout, 4096 in flight,
    /// tracing off, reconnect with 100 ms → 5 s backoff, one try per call.
    pub fn new(key: Key) -> ChannelConfig {
        ChannelConfig {
            keyring: Arc::new(Keyring::single(key.clone())),
            key,
            ttl: Duration::from_secs(60),
            max_frame: crate::transport::DEFAULT_MAX_FRAME,
            timeout: Duration::from_secs(30),
            max_in_flight: 4096,
            telemetry: None,
            reconnect: Some(ReconnectPolicy::default()),
            identity: None,
            handshake_timeout: Duration::from_secs(10),
            tries: 1,
            retry_entries: 1 << 18,
            retry_bytes: 64 << 20,
        }
    }

    /// Turns tracing on with this telemetry handle.
    pub fn with_telemetry(mut self, telemetry: Option<Telemetry>) -> ChannelConfig {
        self.telemetry = telemetry;
        self
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().min(u128::from(u64::MAX)) as u64
    }
}

/// Parses an endpoint URL (`tcp://HOST:PORT`).
pub fn parse_url(url: &str) -> Result<Endpoint, Error> {
    Endpoint::parse(url).ok_or_else(|| Error::BadAddress(url.to_owned()))
}

/// 16 random bytes (probe tokens).
pub fn random_token() -> [u8; 16] {
    random_salt()
}

pub(crate) fn random_salt() -> [u8; 16] {
    let mut s = [0u8; 16];
    rand::fill(&mut s);
    s
}
