//! The wire format, sans-IO: bytes in, typed values or typed errors out.
//!
//! A frame (as delivered by any transport) is exactly one sealed envelope:
//! `header (40 bytes) || AES-256-GCM ciphertext of the load || tag (16 bytes)`.
//! See `docs/wire-format.md` for the byte-level description. Before any
//! envelope, a connection with identities runs the Noise XX handshake of
//! [`handshake`], whose frames share the magic and version but not the kinds.
pub mod envelope;
pub mod handshake;
pub mod header;
pub mod load;
pub mod replay;

pub use envelope::{Opened, Opener, Sealer, SealerLimits};
pub use handshake::{Completed, HandshakeError, Initiator, Responder};
pub use header::{Header, Kind, HEADER_LEN, TAG_LEN};
pub use load::{PublishLoad, ReplyLoad, ReplyStatus, RequestLoad};
pub use replay::{ReplayWindow, SessionRegistry};
