//! Shared fixtures for the envelope test files (tests/envelope_*.rs).
#![allow(dead_code, unused_imports)]
use bytes::BytesMut;
use sealrpc::error::{KeyError, WireError};
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::header::{alert_frame, parse_alert, AlertCode, ALERT_KIND, MAGIC, VERSION};
use sealrpc::wire::load::{self, Carrier, MAX_TRACE_PAIRS};
use sealrpc::wire::{
    Header, Kind, Opener, ReplyLoad, RequestLoad, Sealer, SealerLimits, SessionRegistry,
    HEADER_LEN, TAG_LEN,
};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// A fixed "now": 2023-11-14T22:13:20Z in ms since the epoch.
pub const T0: u64 = 1_700_000_000_000;
/// Envelope TTL used by every opener here.
pub const TTL: u64 = 60_000;
/// Frame limit used by most tests.
pub const MAX: usize = 1 << 20;
/// The transport's default frame limit (16 MiB).
pub const BIG_MAX: usize = 16 * 1024 * 1024;
/// Smallest possible envelope: header and tag around an empty load.
pub const MIN_ENVELOPE: usize = HEADER_LEN + TAG_LEN;

pub fn key_a() -> Key {
    Key::from_bytes([0x11; 32])
}

pub fn key_b() -> Key {
    Key::from_bytes([0x22; 32])
}

pub fn ring(keys: &[&Key]) -> Arc<Keyring> {
    let mut r = Keyring::default();
    for k in keys {
        r.insert((*k).clone());
    }
    Arc::new(r)
}

pub fn registry() -> Arc<SessionRegistry> {
    Arc::new(SessionRegistry::new(TTL, 1024))
}

pub fn opener_for(keys: &[&Key], reg: &Arc<SessionRegistry>, expect: Kind) -> Opener {
    Opener::new(ring(keys), reg.clone(), expect, TTL, MAX)
}

pub fn request<'a>(id: u64, method: &'a str, body: &'a [u8]) -> RequestLoad<'a> {
    RequestLoad {
        retry: &[],
        id,
        method,
        body,
        deadline_ms: 250,
        trace: Carrier::default(),
    }
}

/// Seals one envelope of `kind` carrying `load` with limit `max`.
pub fn seal_with<T: serde::Serialize>(
    sealer: &mut Sealer,
    kind: Kind,
    now: u64,
    max: usize,
    load: &T,
) -> Result<Vec<u8>, WireError> {
    let mut out = BytesMut::new();
    sealer.seal(kind, now, max, &mut out, |b| load::encode(load, b))?;
    Ok(out.to_vec())
}

pub fn seal_req(sealer: &mut Sealer, now: u64, load: &RequestLoad) -> Vec<u8> {
    seal_with(sealer, Kind::Request, now, MAX, load).expect("seal request")
}

/// Opens a copy of `env`; returns the plaintext load on success.
pub fn open_copy(op: &mut Opener, env: &[u8], now: u64) -> Result<Vec<u8>, WireError> {
    let mut frame = env.to_vec();
    let opened = op.open(&mut frame, now)?;
    assert_eq!(opened.load, HEADER_LEN..frame.len() - TAG_LEN);
    Ok(frame[opened.load].to_vec())
}

pub fn header_of(env: &[u8]) -> Header {
    Header::parse(env).expect("header parses")
}

/// The name an opener gives `kind` in `WireError::WrongKind`.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "request",
        Kind::Reply => "reply",
        Kind::Publish => "publish",
    }
}

/// The exact error opening `flipped` (a sealed envelope with byte `pos`
/// changed, under a known key, at `T0`) must give, for an opener expecting
/// `expect` that has accepted the sequences `seen` of its session.
pub fn flip_error(flipped: &[u8], pos: usize, expect: Kind, seen: &[u64]) -> WireError {
    match pos {
        0 | 1 => WireError::BadMagic,
        2 => WireError::UnsupportedVersion(flipped[2]),
        3 => match flipped[3] {
            k @ 1..=3 if k != expect as u8 => WireError::WrongKind {
                expected: kind_name(expect),
                got: ["request", "reply", "publish"][usize::from(k) - 1],
            },
            k => WireError::UnknownKind(k),
        },
        4..=7 => WireError::UnknownKey(u32::from_be_bytes(flipped[4..8].try_into().unwrap())),
        24..=31 => {
            let seq = u64::from_be_bytes(flipped[24..32].try_into().unwrap());
            if seen.contains(&seq) {
                WireError::Replayed { seq }
            } else {
                WireError::AuthenticationFailed
            }
        }
        32..=39 => {
            let sent = u64::from_be_bytes(flipped[32..40].try_into().unwrap());
            if sent.saturating_add(TTL) < T0 {
                WireError::Expired {
                    age_ms: T0 - sent,
                    ttl_ms: TTL,
                }
            } else if sent > T0 + TTL {
                WireError::FromFuture {
                    ahead_ms: sent - T0,
                    ttl_ms: TTL,
                }
            } else {
                WireError::AuthenticationFailed
            }
        }
        _ => WireError::AuthenticationFailed,
    }
}
