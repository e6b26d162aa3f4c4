//! The fixed 40-byte envelope header. It is sent in clear and authenticated
//! as AES-GCM associated data, so no field can be changed without detection.
//!
//! ```text
//! offset size field
//!  0      2   magic "SR"
//!  2      1   version (1)
//!  3      1   kind (1 request, 2 reply)
//!  4      4   key id (u32, big endian)
//!  8     16   session salt: random per sender session, selects the derived key
//! 24      8   sequence (u64, big endian): the per-session GCM nonce counter
//! 32      8   sender time, milliseconds since the Unix epoch (u64, big endian)
//! ```
use crate::error::WireError;

/// Bytes of the header.
pub const HEADER_LEN: usize = 40;
/// Bytes of the AES-GCM authentication tag that ends every envelope.
pub const TAG_LEN: usize = 16;
/// The two magic bytes every envelope starts with.
pub const MAGIC: [u8; 2] = *b"SR";
/// The only envelope version this build speaks. Others are refused, never downgraded to.
pub const VERSION: u8 = 1;

/// What an envelope carries. Authenticated: a request cannot be replayed as a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client to server: a call.
    Request = 1,
    /// Server to client: the answer to a call.
    Reply = 2,
    /// Master to minion: a published job (or a subscription probe).
    Publish = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Kind, WireError> {
        match b {
            1 => Ok(Kind::Request),
            2 => Ok(Kind::Reply),
            3 => Ok(Kind::Publish),
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub key_id: u32,
    pub salt: [u8; 16],
    pub seq: u64,
    pub time_ms: u64,
}

impl Header {
    /// Serialises the header into exactly [`HEADER_LEN`] bytes.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = self.kind as u8;
        out[4..8].copy_from_slice(&self.key_id.to_be_bytes());
        out[8..24].copy_from_slice(&self.salt);
        out[24..32].copy_from_slice(&self.seq.to_be_bytes());
        out[32..40].copy_from_slice(&self.time_ms.to_be_bytes());
    }

    /// Parses the header at the start of `frame`. Checks length, magic,
    /// version and kind; everything else is only trusted after the tag verifies.
    pub fn parse(frame: &[u8]) -> Result<Header, WireError> {
        let Some(h) = frame.get(..HEADER_LEN) else {
            return Err(WireError::Truncated {
                len: frame.len(),
                min: HEADER_LEN + TAG_LEN,
            });
        };
        if h[0..2] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if h[2] != VERSION {
            return Err(WireError::UnsupportedVersion(h[2]));
        }
        let kind = Kind::from_u8(h[3])?;
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&h[8..24]);
        Ok(Header {
            kind,
            key_id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            salt,
            seq: be_u64(&h[24..32]),
            time_ms: be_u64(&h[32..40]),
        })
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Kind byte of the unauthenticated alert frame a receiver sends before it
/// closes a connection whose envelope it refused. Advisory only: it can do
/// nothing but end a connection, which an on-path attacker can do anyway.
pub const ALERT_KIND: u8 = 0x7f;
/// Bytes of an alert frame: magic, version, [`ALERT_KIND`], reason code.
pub const ALERT_LEN: usize = 5;

/// Why a peer refused our envelope (the alert's reason code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AlertCode {
    /// Authentication failed, unknown key, replay or expiry: our envelope was refused.
    Refused = 1,
    /// The envelope or load was malformed or too large.
    Malformed = 2,
    /// The handshake authenticated a peer its verifier does not accept (a
    /// minion key pending, rejected or denied; a master key that does not
    /// match the pin) or the handshake itself failed.
    NotAuthorized = 3,
    /// The server is shutting down: every reply it sent on this connection
    /// precedes this frame, and no request after them was run. The peer
    /// should close the connection (the server waits for that, briefly).
    GoingAway = 4,
}

/// The 5-byte alert frame for `code`.
pub fn alert_frame(code: AlertCode) -> [u8; ALERT_LEN] {
    [MAGIC[0], MAGIC[1], VERSION, ALERT_KIND, code as u8]
}

/// The reason code if `frame` is an alert frame.
pub fn parse_alert(frame: &[u8]) -> Option<u8> {
    match frame {
        [m0, m1, VERSION, ALERT_KIND, code] if [*m0, *m1] == MAGIC => Some(*code),
        _ => None,
    }
}
