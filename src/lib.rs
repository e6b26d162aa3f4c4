//! sealrpc: encrypted request/reply whose OpenTelemetry trace context travels
//! *inside* the sealed envelope.
//!
//! # Layout
//! - [`wire`]: sans-IO wire format. `header` (fixed, authenticated header),
//!   `envelope` (AES-256-GCM seal/open, nonces, limits), `replay` (sliding
//!   window + session registry), `load` (MessagePack request/reply loads).
//!   No sockets, no clocks: time comes in as an argument.
//! - [`context`]: W3C `traceparent`/`tracestate` parsing and formatting over
//!   the load's carrier. No OpenTelemetry types.
//! - [`channel`]: the single chokepoint. The only caller of seal/open and of
//!   trace inject/extract. `client` and `server` drive a frame transport.
//! - [`telemetry`]: opt-in OpenTelemetry (cargo feature `otel`): config,
//!   exporters, provider, client/server spans.
//! - [`transport`]: the frame-transport interface (`FrameRecv`, `FrameSend`)
//!   and the transports behind it; the channel sees nothing else.
//! - [`keys`]: key files and the keyring.
//! - [`error`]: typed errors.
//! - [`rlimit`]: the open-file limit a master with many minions needs.
pub mod bench;
pub mod builtin;
pub mod channel;
pub mod context;
pub mod error;
pub mod job;
pub mod keys;
pub mod master;
pub mod minion;
pub mod pki;
pub mod rlimit;
pub mod soak;
pub mod tap;
pub mod telemetry;
pub mod transport;
pub mod wire;

pub use error::Error;
