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
    #[error("{}", alert_message(*.0))]
    PeerAlert(u8),
    /// The load did not decode. The reason is a fixed phrase: decoder
    /// messages can quote attacker-chosen bytes, so they are never kept.
    #[error("bad load: {0}")]
    BadLoad(&'static str),
    #[error("publish signature missing or invalid: not from the master")]
    BadSignature,
}

/// The connection handshake (`wire::handshake`) failed. Variants carry
/// lengths, a version or kind byte, an alert code or a fixed phrase: never
/// key material, payload bytes, or the Noise library's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("handshake frame truncated: {len} bytes, at least {min} needed")]
    Truncated { len: usize, min: usize },
    #[error("handshake frame too large: {len} bytes, the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not a sealrpc handshake frame (bad magic)")]
    BadMagic,
    #[error("unsupported handshake version {0} (this build speaks version 1 only)")]
    UnsupportedVersion(u8),
    #[error("unexpected frame: expected {expected}, got kind {got:#04x}")]
    UnexpectedMessage { expected: &'static str, got: u8 },
    #[error("the peer refused the handshake (alert {0}); see the peer's log")]
    PeerAlert(u8),
    /// Our own payload is over the limit (a caller error, nothing was sent).
    #[error("handshake payload too large: {len} bytes, the limit is {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("handshake authentication failed: tampered message or wrong peer")]
    Decrypt,
    /// Any other Noise failure, as a fixed phrase.
    #[error("handshake failed: {0}")]
    Noise(&'static str),
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
    /// The server (or this end) is at a limit and refused the work
    /// without running it: retrying later is safe.
    #[error("overloaded: {0}")]
    Overloaded(String),
    #[error("publish refused: {0}")]
    Publish(String),
    #[error("handshake: {0}")]
    Handshake(#[from] crate::wire::handshake::HandshakeError),
    #[error("handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("keys: {0}")]
    Pki(String),
    #[error("bad body: {0}")]
    Body(String),
}

/// What a peer's alert code means, for the one-line error a user sees.
fn alert_message(code: u8) -> String {
    match code {
        3 => "the peer did not accept our identity (a minion key pending, rejected or \
              denied on the master: see `sealrpc key list`; or a failed handshake)"
            .to_owned(),
        4 => "the peer is shutting down (alert 4): requests it had not answered were not run"
            .to_owned(),
        2 => "the peer refused our envelope as malformed or too large (alert 2); see the peer's log"
            .to_owned(),
        c => format!(
            "the peer refused our envelope (alert {c}): wrong key, replay, clock skew or bad data; see the peer's log"
        ),
    }
}
