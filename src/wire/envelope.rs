//! Sealing and opening envelopes with AES-256-GCM.
//!
//! Keys: each sender session picks a random 128-bit salt and derives its
//! AES-256 key as HKDF-SHA256(ikm = long-term key, salt = session salt,
//! info = "sealrpc v1 session key"). Nonce = 4 zero bytes || 64-bit sequence
//! (SP 800-38D §8.2.1 deterministic construction). The sequence starts at 0
//! and only grows, so a nonce never repeats under a derived key; two senders
//! (many clients sharing a key, or one process restarting) pick different
//! salts and so different keys. Salt collisions are a 2^-128 per pair event.
//!
//! Limits: a sender rekeys (new salt, sequence 0) after `soft` envelopes and
//! refuses to seal past `hard`; see [`SealerLimits`].
use super::header::{Header, Kind, HEADER_LEN, TAG_LEN};
use super::replay::{ReplayWindow, SessionRegistry};
use crate::error::WireError;
use crate::keys::{Key, Keyring};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use bytes::BytesMut;
use hkdf::Hkdf;
use sha2::Sha256;
use std::ops::Range;
use std::sync::Arc;
use zeroize::Zeroizing;

const KDF_INFO: &[u8] = b"sealrpc v1 session key";
/// Sender sessions one connection keeps (a rekey briefly needs 2); adopting
/// one more retires the oldest.
pub const MAX_SESSIONS_PER_PEER: usize = 4;

/// How many envelopes one derived key may seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealerLimits {
    /// [`Sealer::needs_rekey`] turns true here.
    pub soft: u64,
    /// Sealing fails with [`WireError::KeyExhausted`] here.
    pub hard: u64,
}

impl Default for SealerLimits {
    /// 2^32 envelopes, then rekey; refuse at 2^32 + 2^20. Far below the
    /// 2^64 invocations the nonce space allows, to keep the AES-GCM
    /// confidentiality and forgery bounds negligible for 16 MiB envelopes.
    fn default() -> Self {
        SealerLimits {
            soft: 1 << 32,
            hard: (1 << 32) + (1 << 20),
        }
    }
}

fn derive(key: &Key, salt: &[u8; 16]) -> Aes256Gcm {
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit: cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), key.bytes()).expand(KDF_INFO, okm.as_mut_slice());
    // From the slice: no temporary copy of the key outside `okm`.
    match Aes256Gcm::new_from_slice(okm.as_slice()) {
        Ok(cipher) => cipher,
        Err(_) => unreachable!("HKDF output is exactly 32 bytes"),
    }
}

fn nonce(seq: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n.into()
}

/// One sending session: a derived key and its nonce counter.
pub struct Sealer {
    key: Key,
    salt: [u8; 16],
    cipher: Aes256Gcm,
    seq: u64,
    limits: SealerLimits,
    binding: Option<[u8; 16]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key", &self.key)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Sealer {
    /// A sealer for `key` whose session salt is `salt` (must be fresh random).
    pub fn new(key: Key, salt: [u8; 16]) -> Sealer {
        Sealer::with_limits(key, salt, SealerLimits::default())
    }

    /// As [`new`](Self::new), with explicit key-use limits.
    pub fn with_limits(key: Key, salt: [u8; 16], limits: SealerLimits) -> Sealer {
        let cipher = derive(&key, &salt);
        Sealer {
            key,
            salt,
            cipher,
            seq: 0,
            limits,
            binding: None,
        }
    }

    /// This session's salt.
    pub fn salt(&self) -> [u8; 16] {
        self.salt
    }

    /// Binds every later envelope to `binding` (appended to the associated
    /// data): replies are bound to the connection's first request session,
    /// so a reply recorded on one connection never opens on another.
    pub fn bind(&mut self, binding: [u8; 16]) {
        self.binding = Some(binding);
    }

    /// True once the soft limit is reached: call [`rekey`](Self::rekey).
    pub fn needs_rekey(&self) -> bool {
        self.seq >= self.limits.soft
    }

    /// Starts a new session: new salt, new derived key, sequence 0.
    pub fn rekey(&mut self, salt: [u8; 16]) {
        self.cipher = derive(&self.key, &salt);
        self.salt = salt;
        self.seq = 0;
    }

    /// Envelopes sealed in this session.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Appends one envelope to `out`: reserves the header, lets `write_load`
    /// append the plaintext load, encrypts it in place and appends the tag.
    /// On any error `out` is left as it was and no nonce is consumed.
    pub fn seal(
        &mut self,
        kind: Kind,
        now_ms: u64,
        max_len: usize,
        out: &mut BytesMut,
        write_load: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        if self.seq >= self.limits.hard {
            return Err(WireError::KeyExhausted(self.seq));
        }
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        if let Err(e) = write_load(out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start + TAG_LEN;
        if len > max_len {
            out.truncate(start);
            return Err(WireError::TooLarge { len, max: max_len });
        }
        let header = Header {
            kind,
            key_id: self.key.id(),
            salt: self.salt,
            seq: self.seq,
            time_ms: now_ms,
        };
        let (head, body) = out[start..].split_at_mut(HEADER_LEN);
        let head: &mut [u8; HEADER_LEN] = head.try_into().map_err(|_| WireError::BadMagic)?;
        header.write(head);
        let aad = Aad::new(head, self.binding.as_ref());
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(self.seq), aad.bytes(), body.into())
            .map_err(|_| WireError::TooLarge { len, max: max_len })?;
        out.extend_from_slice(&tag);
        self.seq += 1;
        Ok(())
    }
}

/// Associated data: the header, then the binding when there is one.
struct Aad {
    buf: [u8; HEADER_LEN + 16],
    len: usize,
}

impl Aad {
    fn new(header: &[u8], binding: Option<&[u8; 16]>) -> Aad {
        let mut buf = [0u8; HEADER_LEN + 16];
        buf[..HEADER_LEN].copy_from_slice(&header[..HEADER_LEN]);
        let len = match binding {
            Some(b) => {
                buf[HEADER_LEN..].copy_from_slice(b);
                HEADER_LEN + 16
            }
            None => HEADER_LEN,
        };
        Aad { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

struct PeerSession {
    key_id: u32,
    salt: [u8; 16],
    cipher: Aes256Gcm,
    window: ReplayWindow,
}

/// A successfully opened envelope: its header and where the plaintext load
/// lies inside the frame that was opened in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub header: Header,
    pub load: Range<usize>,
}

/// The receiving side of one connection: authenticates, decrypts in place,
/// and rejects replays. Checks run cheapest first; nothing is trusted, and
/// no replay state changes, until the tag verifies.
pub struct Opener {
    keyring: Arc<Keyring>,
    registry: Arc<SessionRegistry>,
    expect: Kind,
    /// A second kind accepted (a minion's connection: replies and publishes).
    also: Option<Kind>,
    ttl_ms: u64,
    max_len: usize,
    sessions: Vec<PeerSession>,
    /// The latest `now_ms` this opener was given (used when it is dropped).
    last_now_ms: u64,
    binding: Option<[u8; 16]>,
    rekey_after: Option<u64>,
}

impl Opener {
    /// An opener accepting envelopes of kind `expect`, at most `max_len`
    /// bytes, sent within `ttl_ms` of `now`, under keys from `keyring`.
    pub fn new(
        keyring: Arc<Keyring>,
        registry: Arc<SessionRegistry>,
        expect: Kind,
        ttl_ms: u64,
        max_len: usize,
    ) -> Opener {
        Opener {
            keyring,
            registry,
            expect,
            also: None,
            ttl_ms,
            max_len,
            sessions: Vec::new(),
            last_now_ms: 0,
            binding: None,
            rekey_after: None,
        }
    }

    /// One peer, one sender session at a time: a new session is accepted
    /// only as the first, or once the newest one has sealed `threshold`
    /// envelopes (a rekey). Without this, an authenticated peer could mint
    /// salts on one connection to fill the receiver-wide registry.
    pub fn require_rekey_after(&mut self, threshold: u64) {
        self.rekey_after = Some(threshold);
    }

    /// Accepts envelopes of kind `kind` too (the caller dispatches on
    /// [`Opened::header`]'s kind).
    pub fn also_accept(&mut self, kind: Kind) {
        self.also = Some(kind);
    }

    /// Opens later envelopes under `keyring` instead; sessions of the old
    /// keys are released (their salts stay refused through the registry).
    pub fn set_keyring(&mut self, keyring: Arc<Keyring>, now_ms: u64) {
        self.close(now_ms);
        self.keyring = keyring;
    }

    /// Requires every envelope to be bound to `binding` (see [`Sealer::bind`]).
    pub fn bind(&mut self, binding: [u8; 16]) {
        self.binding = Some(binding);
    }

    /// Opens `frame` in place. On success the plaintext load is
    /// `frame[opened.load]`; on failure the frame's content is unspecified.
    pub fn open(&mut self, frame: &mut [u8], now_ms: u64) -> Result<Opened, WireError> {
        self.last_now_ms = self.last_now_ms.max(now_ms);
        let len = frame.len();
        if let Some(code) = super::header::parse_alert(frame) {
            return Err(WireError::PeerAlert(code));
        }
        if len > self.max_len {
            return Err(WireError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        if len < HEADER_LEN + TAG_LEN {
            return Err(WireError::Truncated {
                len,
                min: HEADER_LEN + TAG_LEN,
            });
        }
        let header = Header::parse(frame)?;
        if header.kind != self.expect && Some(header.kind) != self.also {
            return Err(WireError::WrongKind {
                expected: kind_name(self.expect),
                got: kind_name(header.kind),
            });
        }
        self.check_time(header.time_ms, now_ms)?;
        let idx = self.session_index(&header)?;
        let mut fresh = None;
        let session = match idx {
            Some(i) => &self.sessions[i],
            None => fresh.insert(self.new_session(&header)?),
        };
        session.window.check(header.seq)?;
        let (head, rest) = frame.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let tag = Tag::<aes_gcm::aead::consts::U16>::try_from(&*tag)
            .map_err(|_| WireError::AuthenticationFailed)?;
        let aad = Aad::new(head, self.binding.as_ref());
        session
            .cipher
            .decrypt_inout_detached(&nonce(header.seq), aad.bytes(), body.into(), &tag)
            .map_err(|_| WireError::AuthenticationFailed)?;
        let i = match (idx, fresh) {
            (Some(i), _) => i,
            (None, Some(s)) => self.adopt_session(s, now_ms)?,
            (None, None) => return Err(WireError::AuthenticationFailed),
        };
        self.sessions[i].window.record(header.seq);
        Ok(Opened {
            header,
            load: HEADER_LEN..len - TAG_LEN,
        })
    }

    /// Releases this connection's sessions into the registry's retention.
    pub fn close(&mut self, now_ms: u64) {
        for s in self.sessions.drain(..) {
            self.registry.release(&s.salt, now_ms);
        }
    }

    fn check_time(&self, sent_ms: u64, now_ms: u64) -> Result<(), WireError> {
        if sent_ms < self.registry.not_before_ms() {
            return Err(WireError::PredatesReceiver);
        }
        if sent_ms.saturating_add(self.ttl_ms) < now_ms {
            return Err(WireError::Expired {
                age_ms: now_ms - sent_ms,
                ttl_ms: self.ttl_ms,
            });
        }
        if sent_ms > now_ms.saturating_add(self.ttl_ms) {
            return Err(WireError::FromFuture {
                ahead_ms: sent_ms - now_ms,
                ttl_ms: self.ttl_ms,
            });
        }
        Ok(())
    }

    fn session_index(&self, h: &Header) -> Result<Option<usize>, WireError> {
        let found = self
            .sessions
            .iter()
            .position(|s| s.salt == h.salt && s.key_id == h.key_id);
        if found.is_none() && self.keyring.get(h.key_id).is_none() {
            return Err(WireError::UnknownKey(h.key_id));
        }
        Ok(found)
    }

    fn new_session(&self, h: &Header) -> Result<PeerSession, WireError> {
        let key = self
            .keyring
            .get(h.key_id)
            .ok_or(WireError::UnknownKey(h.key_id))?;
        Ok(PeerSession {
            key_id: h.key_id,
            salt: h.salt,
            cipher: derive(key, &h.salt),
            window: ReplayWindow::default(),
        })
    }

    /// Called only after the first envelope of a new session authenticated.
    /// At the per-peer limit the oldest session is retired (a sender that
    /// rekeyed never goes back to an old salt), so rekeying never kills a
    /// connection; the retired salt stays refused through the registry.
    fn adopt_session(&mut self, s: PeerSession, now_ms: u64) -> Result<usize, WireError> {
        if let (Some(threshold), Some(newest)) = (self.rekey_after, self.sessions.last()) {
            let used = newest.window.highest().map_or(0, |h| h.saturating_add(1));
            if used < threshold {
                return Err(WireError::PrematureSession);
            }
        }
        self.registry.claim(&s.salt, now_ms)?;
        if self.sessions.len() >= MAX_SESSIONS_PER_PEER {
            let oldest = self.sessions.remove(0);
            self.registry.release(&oldest.salt, now_ms);
        }
        self.sessions.push(s);
        Ok(self.sessions.len() - 1)
    }
}

impl Drop for Opener {
    /// Releases any sessions still held, as of the latest time this opener
    /// was given (no clock is read). That is safe: every envelope it
    /// accepted carried a time at most `last_now + ttl`, so it expires
    /// before the registry forgets the session at `last_now + 2 * ttl`.
    fn drop(&mut self) {
        if !self.sessions.is_empty() {
            self.close(self.last_now_ms);
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Request => "request",
        Kind::Reply => "reply",
        Kind::Publish => "publish",
    }
}

/// Milliseconds since the Unix epoch from the system clock (0 if before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
