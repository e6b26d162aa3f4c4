//! Typed errors, sorted by who is at fault. Messages never contain key
//! material, plaintext or trace identifiers.
use std::time::Duration;

/// Something is wrong with bytes that came off the wire. Each variant names
/// one failure; none of them echoes attacker-controlled data at length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("envelope truncated: {len} bytes, at least {min} needed")]
    Truncated { len: usize, min: usize },
    #[error("envelope too large: {len} bytes, the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not a sealrpc envelope (bad magic)")]
    BadMagic,
    #[error("unsupported envelope version {0} (this build speaks version 1 only)")]
    UnsupportedVersion(u8),
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    #[error("unexpected envelope kind: expected {expected}, got {got}")]
    WrongKind {
        expected: &'static str,
        got: &'static str,
    },
    #[error("unknown key id {0:08x}")]
    UnknownKey(u32),
    #[error("authentication failed: wrong key or tampered envelope")]
    AuthenticationFailed,
    #[error("replayed envelope (sequence {seq})")]
    Replayed { seq: u64 },
    #[error("replayed envelope: its session was already used on another connection")]
    SessionReused,
    #[error("envelope expired: sent {age_ms} ms ago, the limit is {ttl_ms} ms")]
    Expired { age_ms: u64, ttl_ms: u64 },
    #[error("envelope sent before this receiver started (a replay from before a restart, or a clock behind)")]
    PredatesReceiver,
    #[error("envelope from the future: {ahead_ms} ms ahead, the limit is {ttl_ms} ms")]
    FromFuture { ahead_ms: u64, ttl_ms: u64 },
    #[error("a new sender session before the current one reached its rekey limit")]
    PrematureSession,
    #[error("session registry full ({0} entries): refusing new sessions")]
    RegistryFull(usize),
    #[error("key use limit reached: {0} envelopes under one session key; rekey required")]
    KeyExhausted(u64),
    #[error("the peer refused our envelope (alert {0}): wrong key, replay, clock skew or bad data; see the peer's log")]
    PeerAlert(u8),
    /// The load did not decode. The reason is a fixed phrase: decoder
    /// messages can quote attacker-chosen bytes, so they are never kept.
    #[error("bad load: {0}")]
    BadLoad(&'static str),
}

/// Errors from key files and keyrings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path}: expected 64 hexadecimal characters (a 256-bit key)")]
    Format { path: String },
    #[error("key file {path} already exists; refusing to overwrite it")]
    Exists { path: String },
}

/// Everything a sealrpc call or server can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("transport: {0}")]
    Transport(#[from] crate::transport::TransportError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid address {0:?}: expected tcp://HOST:PORT or ws://HOST:PORT[/PATH]")]
    BadAddress(String),
    #[error("call {method} timed out after {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("could not connect within {0:?}")]
    ConnectTimeout(Duration),
    #[error("remote error: {0}")]
    Remote(String),
    #[error("no such method on the server: {0}")]
    NoSuchMethod(String),
    #[error("call timed out: the server stopped it at its deadline")]
    DeadlineExceeded,
    #[error("connection closed")]
    ConnectionClosed,
    #[error("the peer's connection is backed up (it is not reading); not sent")]
    Busy,
    #[error("publish refused: {0}")]
    Publish(String),
    #[error("bad body: {0}")]
    Body(String),
}
