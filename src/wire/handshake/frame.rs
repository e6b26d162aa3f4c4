//! Handshake frames, checked before any cryptography:
//! `53 52` (magic), `01` (version), kind (`0x10`, `0x11`, `0x12`), then the
//! Noise message. Sizes are exact per message, so nothing is decrypted
//! unless its length can be right.
use super::{HandshakeError, KIND_MSG1, KIND_MSG2, KIND_MSG3, MAX_PAYLOAD_LEN};
use crate::wire::header::{parse_alert, MAGIC, VERSION};

/// Bytes before the Noise message: magic, version, kind.
pub(super) const FRAME_HEADER_LEN: usize = 4;
/// An X25519 public key, sent in clear (`e`).
const DH_LEN: usize = 32;
/// An AES-GCM tag.
const TAG_LEN: usize = 16;

/// The three messages of XX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Msg {
    /// `-> e` (no payload: nothing is encrypted yet).
    One,
    /// `<- e, ee, s, es` + the responder's encrypted payload.
    Two,
    /// `-> s, se` + the initiator's encrypted payload.
    Three,
}

impl Msg {
    pub(super) fn kind(self) -> u8 {
        match self {
            Msg::One => KIND_MSG1,
            Msg::Two => KIND_MSG2,
            Msg::Three => KIND_MSG3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Msg::One => "handshake message 1",
            Msg::Two => "handshake message 2",
            Msg::Three => "handshake message 3",
        }
    }

    /// Bytes of the Noise message besides the payload.
    fn overhead(self) -> usize {
        match self {
            Msg::One => DH_LEN,
            Msg::Two => DH_LEN + (DH_LEN + TAG_LEN) + TAG_LEN,
            Msg::Three => (DH_LEN + TAG_LEN) + TAG_LEN,
        }
    }

    /// Shortest valid frame (empty payload).
    pub(super) fn min_len(self) -> usize {
        FRAME_HEADER_LEN + self.overhead()
    }

    /// Longest valid frame (payload of [`MAX_PAYLOAD_LEN`]; message 1 has none).
    pub(super) fn max_len(self) -> usize {
        match self {
            Msg::One => self.min_len(),
            Msg::Two | Msg::Three => self.min_len() + MAX_PAYLOAD_LEN,
        }
    }
}

/// `noise` framed as message `msg`.
pub(super) fn frame(msg: Msg, noise: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + noise.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(msg.kind());
    out.extend_from_slice(noise);
    out
}

/// The Noise message inside `frame`, if `frame` can be message `msg`.
/// Order: alert, header (magic, version, kind), then length.
pub(super) fn parse(frame: &[u8], msg: Msg) -> Result<&[u8], HandshakeError> {
    if let Some(code) = parse_alert(frame) {
        return Err(HandshakeError::PeerAlert(code));
    }
    let len = frame.len();
    let min = msg.min_len();
    let Some((head, noise)) = frame.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(HandshakeError::Truncated { len, min });
    };
    let [m0, m1, version, kind] = *head;
    if [m0, m1] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    if version != VERSION {
        return Err(HandshakeError::UnsupportedVersion(version));
    }
    if kind != msg.kind() {
        return Err(HandshakeError::UnexpectedMessage {
            expected: msg.name(),
            got: kind,
        });
    }
    if len > msg.max_len() {
        return Err(HandshakeError::TooLarge {
            len,
            max: msg.max_len(),
        });
    }
    if len < min {
        return Err(HandshakeError::Truncated { len, min });
    }
    Ok(noise)
}

/// A fixed phrase for each of snow's failures: nothing from the library's
/// own message (or the input) is kept.
pub(super) fn noise_error(e: snow::Error) -> HandshakeError {
    match e {
        snow::Error::Decrypt => HandshakeError::Decrypt,
        snow::Error::Input => HandshakeError::Noise("malformed handshake message"),
        snow::Error::Dh => HandshakeError::Noise("key agreement failed"),
        snow::Error::Rng => HandshakeError::Noise("random number generator failed"),
        _ => HandshakeError::Noise("handshake state error"),
    }
}
