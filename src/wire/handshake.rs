//! The connection handshake, sans-IO: `Noise_XX_25519_AESGCM_SHA256` (via
//! the `snow` crate) with prologue `"sealrpc handshake v1"`. Bytes in,
//! bytes or typed errors out; no sockets, no clocks.
//!
//! ```text
//! initiator (client, minion)                 responder (server, master)
//!   Initiator::start       -- frame 1: e -->
//!                           <-- frame 2: e, ee, s, es, payload --  Responder::respond
//!   Initiator::finish      -- frame 3: s, se, payload -->
//!                                                                   Responder::finish
//! ```
//!
//! Each message travels as one transport frame: `53 52` ("SR"), version
//! `01`, kind `0x10` / `0x11` / `0x12`, then the Noise message. Another
//! version is refused, never downgraded to; any other frame (an envelope,
//! an alert) where a handshake message is expected is an error.
//!
//! Both sides end with [`Completed`]: the peer's long-term X25519 public key
//! (authenticated: compare it with a pinned or accepted key), the peer's
//! payload (encrypted in transit), and the Noise `Split()` keys, one per
//! direction. Fresh ephemerals on both sides make every handshake's keys
//! new (forward secrecy). The keys become the long-term key `K` of the
//! envelope (`HKDF(K, salt)` per sender session), so the envelope format
//! does not change.
//!
//! A handshake state is used once: any error ends it (the methods take
//! `self`), so a peer gets no second try on the same state.
//!
//! Not covered here (snow 0.10 limitations): snow does not zeroize its own
//! copies of the static and ephemeral secrets or of the chaining key when
//! its state is dropped; this module zeroizes only the buffers it owns and
//! the keys it hands out. Small-order public keys are not rejected (Noise
//! allows either; XX's authentication does not depend on it).
mod frame;

use frame::{noise_error, parse, Msg};
use snow::{Builder, HandshakeState};
use zeroize::{Zeroize, Zeroizing};

pub use crate::error::HandshakeError;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// Mixed into the handshake hash: both sides must agree on it.
pub const PROLOGUE: &[u8] = b"sealrpc handshake v1";
/// Kind byte of frame 1 (initiator to responder).
pub const KIND_MSG1: u8 = 0x10;
/// Kind byte of frame 2 (responder to initiator).
pub const KIND_MSG2: u8 = 0x11;
/// Kind byte of frame 3 (initiator to responder).
pub const KIND_MSG3: u8 = 0x12;
/// Longest payload either side may send (frames 2 and 3).
pub const MAX_PAYLOAD_LEN: usize = 512;
/// Longest handshake frame (frame 2 with the largest payload): 612 bytes.
pub const MAX_FRAME_LEN: usize = 4 + 96 + MAX_PAYLOAD_LEN;

/// The result of a completed handshake, on either side.
pub struct Completed {
    /// The peer's long-term public key (authenticated by the handshake).
    pub remote_static: [u8; 32],
    /// The peer's payload (msg 2's for the initiator, msg 3's for the responder).
    pub payload: Vec<u8>,
    /// Key this side seals with: the Noise split, per direction.
    pub send_key: Zeroizing<[u8; 32]>,
    /// Key this side opens with.
    pub recv_key: Zeroizing<[u8; 32]>,
    /// The Noise handshake hash (channel binding; not secret).
    pub handshake_hash: [u8; 32],
}

impl std::fmt::Debug for Completed {
    /// Lengths only: no key, no payload.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completed")
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// The connecting side, between frame 1 and frame 2.
pub struct Initiator {
    state: HandshakeState,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator").finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake; returns the state and the first frame to send.
    pub fn start(static_secret: &[u8; 32]) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        let mut state = builder(static_secret)?
            .build_initiator()
            .map_err(noise_error)?;
        let frame1 = write(&mut state, Msg::One, &[])?;
        Ok((Initiator { state }, frame1))
    }

    /// Reads frame 2; returns frame 3 to send (carrying `payload`) and the result.
    ///
    /// Check [`Completed::remote_static`] (the pin) *before* sending frame 3:
    /// frame 3 carries our static key and `payload`, encrypted to whoever
    /// answered, so an unverified responder should never receive it.
    pub fn finish(
        mut self,
        frame2: &[u8],
        payload: &[u8],
    ) -> Result<(Vec<u8>, Completed), HandshakeError> {
        check_payload(payload)?;
        let peer_payload = read(&mut self.state, Msg::Two, frame2)?;
        let frame3 = write(&mut self.state, Msg::Three, payload)?;
        let done = complete(&mut self.state, peer_payload, true)?;
        Ok((frame3, done))
    }
}

/// The accepting side, between frame 2 and frame 3.
pub struct Responder {
    state: HandshakeState,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder {
    /// Reads frame 1 and returns frame 2 (carrying `payload`).
    ///
    /// `payload` is encrypted, but to an initiator not yet authenticated:
    /// anyone who sends a frame 1 reads it. Put nothing secret in it.
    pub fn respond(
        static_secret: &[u8; 32],
        frame1: &[u8],
        payload: &[u8],
    ) -> Result<(Responder, Vec<u8>), HandshakeError> {
        check_payload(payload)?;
        // The frame is checked before any key is touched.
        parse(frame1, Msg::One)?;
        let mut state = builder(static_secret)?
            .build_responder()
            .map_err(noise_error)?;
        let clear = read(&mut state, Msg::One, frame1)?;
        if !clear.is_empty() {
            return Err(HandshakeError::Noise("unexpected payload in message 1"));
        }
        let frame2 = write(&mut state, Msg::Two, payload)?;
        Ok((Responder { state }, frame2))
    }

    /// Reads frame 3: the handshake is complete.
    pub fn finish(mut self, frame3: &[u8]) -> Result<Completed, HandshakeError> {
        let peer_payload = read(&mut self.state, Msg::Three, frame3)?;
        complete(&mut self.state, peer_payload, false)
    }
}

/// The X25519 public key of `static_secret` (base-point multiplication of
/// the clamped scalar, as snow computes it).
pub fn public_key(static_secret: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*static_secret).to_bytes()
}

fn builder(static_secret: &[u8; 32]) -> Result<Builder<'_>, HandshakeError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|_| HandshakeError::Noise("unsupported noise parameters"))?;
    Builder::new(params)
        .prologue(PROLOGUE)
        .and_then(|b| b.local_private_key(static_secret))
        .map_err(noise_error)
}

fn check_payload(payload: &[u8]) -> Result<(), HandshakeError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(HandshakeError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    Ok(())
}

/// Writes message `msg` carrying `payload` and frames it.
fn write(state: &mut HandshakeState, msg: Msg, payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let mut buf = Zeroizing::new([0u8; MAX_FRAME_LEN]);
    let n = state
        .write_message(payload, &mut buf[..])
        .map_err(noise_error)?;
    let noise = buf
        .get(..n)
        .ok_or(HandshakeError::Noise("handshake state error"))?;
    Ok(frame::frame(msg, noise))
}

/// Checks `bytes` as frame `msg` and reads it; returns the decrypted payload.
fn read(state: &mut HandshakeState, msg: Msg, bytes: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let noise = parse(bytes, msg)?;
    let mut buf = Zeroizing::new([0u8; MAX_FRAME_LEN]);
    let n = state
        .read_message(noise, &mut buf[..])
        .map_err(noise_error)?;
    match buf.get(..n) {
        Some(payload) => Ok(payload.to_vec()),
        None => Err(HandshakeError::Noise("handshake state error")),
    }
}

/// The result once the last message is written or read.
fn complete(
    state: &mut HandshakeState,
    payload: Vec<u8>,
    initiator: bool,
) -> Result<Completed, HandshakeError> {
    if !state.is_handshake_finished() {
        return Err(HandshakeError::Noise("handshake state error"));
    }
    let remote_static: [u8; 32] = state
        .get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or(HandshakeError::Noise("peer static key missing"))?;
    let handshake_hash: [u8; 32] = state
        .get_handshake_hash()
        .try_into()
        .map_err(|_| HandshakeError::Noise("handshake state error"))?;
    let mut split = state.dangerously_get_raw_split();
    let (first, second) = (Zeroizing::new(split.0), Zeroizing::new(split.1));
    split.0.zeroize();
    split.1.zeroize();
    let (send_key, recv_key) = if initiator {
        (first, second)
    } else {
        (second, first)
    };
    Ok(Completed {
        remote_static,
        payload,
        send_key,
        recv_key,
        handshake_hash,
    })
}
