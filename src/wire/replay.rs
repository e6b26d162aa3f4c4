//! Replay defence, in two parts (see `docs/wire-format.md`, "Replay"):
//!
//! 1. [`ReplayWindow`]: per sender session, a 1024-entry sliding window over
//!    the sequence number (as IPsec/DTLS do). A sequence seen before, or one
//!    older than the window, is rejected. Updated only after the tag verifies.
//! 2. [`SessionRegistry`]: per receiver (shared by all its connections), the
//!    set of session salts in use or recently used. A session that shows up
//!    on a second connection is a replay of captured traffic and is rejected.
//!    A released session is remembered for twice the envelope TTL, after
//!    which the timestamp check alone rejects its envelopes.
use crate::error::WireError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const WINDOW_BITS: u64 = 1024;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Sliding anti-replay window over 64-bit sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    /// One more than the highest sequence accepted (0 = nothing yet).
    top: u64,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// Checks `seq` without recording it.
    pub fn check(&self, seq: u64) -> Result<(), WireError> {
        if seq >= self.top {
            return Ok(());
        }
        if self.top - seq > WINDOW_BITS || self.bit(seq) {
            return Err(WireError::Replayed { seq });
        }
        Ok(())
    }

    /// The highest sequence accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    /// Records `seq` as seen. Call only after the envelope authenticated and
    /// [`check`](Self::check) passed.
    pub fn record(&mut self, seq: u64) {
        if seq >= self.top {
            let advance = seq + 1 - self.top;
            if advance >= WINDOW_BITS {
                self.bits = [0; WORDS];
            } else {
                for s in self.top..=seq {
                    self.clear(s);
                }
            }
            self.top = seq + 1;
        }
        let (w, b) = Self::slot(seq);
        self.bits[w] |= 1 << b;
    }

    fn slot(seq: u64) -> (usize, u32) {
        (((seq / 64) % WORDS as u64) as usize, (seq % 64) as u32)
    }

    fn bit(&self, seq: u64) -> bool {
        let (w, b) = Self::slot(seq);
        self.bits[w] & (1 << b) != 0
    }

    fn clear(&mut self, seq: u64) {
        let (w, b) = Self::slot(seq);
        self.bits[w] &= !(1 << b);
    }
}

#[derive(Clone, Copy, Debug)]
enum Entry {
    Live,
    Retired { until_ms: u64 },
}

/// Receiver-wide registry of sender sessions (by salt). Touched only when a
/// session starts or ends, never per envelope.
#[derive(Debug)]
pub struct SessionRegistry {
    entries: Mutex<HashMap<[u8; 16], Entry>>,
    retain_ms: u64,
    capacity: usize,
    not_before_ms: AtomicU64,
}

impl SessionRegistry {
    /// `ttl_ms` is the envelope TTL; released sessions are kept `2 * ttl_ms`.
    pub fn new(ttl_ms: u64, capacity: usize) -> SessionRegistry {
        SessionRegistry {
            not_before_ms: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            retain_ms: ttl_ms.saturating_mul(2),
            capacity,
        }
    }

    /// Claims a salt for one connection. Fails if it is live elsewhere or
    /// was used recently.
    pub fn claim(&self, salt: &[u8; 16], now_ms: u64) -> Result<(), WireError> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get(salt) {
            match *entry {
                Entry::Retired { until_ms } if until_ms < now_ms => {}
                _ => return Err(WireError::SessionReused),
            }
        }
        if map.len() >= self.capacity {
            map.retain(|_, e| !matches!(*e, Entry::Retired { until_ms } if until_ms < now_ms));
            if map.len() >= self.capacity {
                return Err(WireError::RegistryFull(self.capacity));
            }
        }
        map.insert(*salt, Entry::Live);
        Ok(())
    }

    /// Marks a salt as no longer live; it stays refused for `2 * ttl`.
    pub fn release(&self, salt: &[u8; 16], now_ms: u64) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            *salt,
            Entry::Retired {
                until_ms: now_ms.saturating_add(self.retain_ms),
            },
        );
    }

    /// Refuses every envelope sent before `ms`. A server sets its start
    /// time: this in-memory registry knows nothing of sessions from before a
    /// restart, so their captured envelopes must not be accepted. (Peers'
    /// clocks must not run behind the receiver's by more than they can
    /// tolerate being refused for, just after it starts.)
    pub fn with_not_before(self, ms: u64) -> SessionRegistry {
        self.not_before_ms.store(ms, Ordering::Relaxed);
        self
    }

    /// Ends the not-before check. A server calls this once a TTL has passed
    /// since it started (by the monotonic clock): from then on the TTL check
    /// alone refuses pre-start envelopes, and a wall clock stepped backwards
    /// cannot keep refusing clients for the size of the step.
    pub fn clear_not_before(&self) {
        self.not_before_ms.store(0, Ordering::Relaxed);
    }

    /// See [`with_not_before`](Self::with_not_before).
    pub fn not_before_ms(&self) -> u64 {
        self.not_before_ms.load(Ordering::Relaxed)
    }

    /// Entries held (live and retired).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the registry holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_new_rejects_seen_and_old() {
        let mut w = ReplayWindow::default();
        for s in [0u64, 1, 5, 3, 2000, 1999, 1500] {
            assert!(w.check(s).is_ok(), "{s}");
            w.record(s);
            assert_eq!(w.check(s), Err(WireError::Replayed { seq: s }));
        }
        assert!(w.check(4).is_err(), "older than the window");
        assert!(w.check(1000).is_ok(), "inside the window, unseen");
        assert!(w.check(976).is_err(), "just outside the window");
    }

    #[test]
    fn registry_refuses_reuse_until_retention_passes() {
        let r = SessionRegistry::new(1000, 8);
        let s = [7u8; 16];
        r.claim(&s, 0).expect("first claim");
        assert_eq!(r.claim(&s, 1), Err(WireError::SessionReused));
        r.release(&s, 10);
        assert_eq!(
            r.claim(&s, 2010),
            Err(WireError::SessionReused),
            "still refused at the boundary"
        );
        assert!(r.claim(&s, 2011).is_ok());
    }

    #[test]
    fn registry_is_bounded() {
        let r = SessionRegistry::new(1000, 2);
        r.claim(&[1; 16], 0).expect("1");
        r.claim(&[2; 16], 0).expect("2");
        assert_eq!(r.claim(&[3; 16], 0), Err(WireError::RegistryFull(2)));
        r.release(&[1; 16], 0);
        assert!(
            r.claim(&[3; 16], 5000).is_ok(),
            "expired entries are purged"
        );
    }
}
