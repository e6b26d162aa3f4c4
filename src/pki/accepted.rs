//! The accepted minion keys, cached in memory. A master consults them on
//! every handshake and re-reads them every second (to cut off minions whose
//! key was deleted or rejected); with 10,000 minions, reading 10,000 files
//! each time does not scale. The cache is re-read only when
//! `minions/accepted` changed: every change the registry makes there
//! (accept, reject, delete, auto-accept, also by `sealrpc key` in another
//! process) creates, links, renames or removes a directory entry, and so
//! updates the directory's change time.
//!
//! Limits, each answered by reading the files again:
//! - Timestamps are coarse (a clock tick): a change in the same tick as a
//!   read would leave them unchanged. A read is trusted only once the
//!   directory's change time is [`SETTLE`] older than the read; until then
//!   every call reads again.
//! - A key file edited in place (by hand, not through `sealrpc key`)
//!   changes no directory entry: it is seen at the next change of the
//!   directory, or after [`MAX_AGE`] at the latest.
use super::error::PkiError;
use super::pubkey::PublicKey;
use super::registry::{KeyState, MinionKeys};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How much older than a read the directory's change time must be for
/// the read to be trusted (far above any timestamp granularity).
pub const SETTLE: Duration = Duration::from_secs(2);
/// The oldest a trusted read may be.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// id → accepted key.
pub type AcceptedMap = HashMap<String, PublicKey>;

/// What identifies one state of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    /// The change time (`ctime`; moves with every entry added or removed).
    changed: SystemTime,
    modified: SystemTime,
    /// The directory itself (replaced as a whole: another inode).
    inode: u64,
    /// Its size (on tmpfs, for one, it moves with every entry).
    len: u64,
}

struct Snapshot {
    stamp: Stamp,
    /// Whether the directory's change time was [`SETTLE`] old at the read.
    settled: bool,
    read_at: Instant,
    keys: Arc<AcceptedMap>,
}

impl Snapshot {
    fn current(&self, now: &Stamp) -> bool {
        self.settled && self.stamp == *now && self.read_at.elapsed() < MAX_AGE
    }
}

/// The accepted keys of one registry, re-read only when they changed.
pub struct AcceptedCache {
    keys: MinionKeys,
    dir: PathBuf,
    snapshot: RwLock<Option<Snapshot>>,
}

impl AcceptedCache {
    pub fn new(keys: MinionKeys) -> AcceptedCache {
        AcceptedCache {
            dir: keys.state_dir(KeyState::Accepted),
            keys,
            snapshot: RwLock::new(None),
        }
    }

    fn stamp(&self) -> Result<Stamp, PkiError> {
        let meta = std::fs::metadata(&self.dir).map_err(|e| PkiError::io(&self.dir, e))?;
        let modified = meta.modified().map_err(|e| PkiError::io(&self.dir, e))?;
        #[cfg(unix)]
        let (changed, inode) = {
            use std::os::unix::fs::MetadataExt;
            let since_epoch = Duration::new(
                meta.ctime().max(0) as u64,
                meta.ctime_nsec().clamp(0, 999_999_999) as u32,
            );
            (SystemTime::UNIX_EPOCH + since_epoch, meta.ino())
        };
        #[cfg(not(unix))]
        let (changed, inode) = (modified, 0);
        Ok(Stamp {
            changed,
            modified,
            inode,
            len: meta.len(),
        })
    }

    /// The accepted keys, and whether they were read from the files just
    /// now. Reads the files only when the directory changed (see the
    /// module's notes); otherwise returns the keys of the last read.
    pub fn get(&self) -> Result<(Arc<AcceptedMap>, bool), PkiError> {
        let stamp = self.stamp()?;
        if let Some(s) = self.read_snapshot().as_ref() {
            if s.current(&stamp) {
                return Ok((s.keys.clone(), false));
            }
        }
        // The stamp is taken before the listing: a change during it moves
        // the stamp, and the next call reads again.
        let (now, read_at) = (SystemTime::now(), Instant::now());
        let keys: AcceptedMap = self.keys.accepted_keys()?.into_iter().collect();
        let settled = [stamp.changed, stamp.modified]
            .iter()
            .all(|t| now.duration_since(*t).is_ok_and(|age| age >= SETTLE));
        let keys = Arc::new(keys);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(Snapshot {
            stamp,
            settled,
            read_at,
            keys: keys.clone(),
        });
        Ok((keys, true))
    }

    /// Whether `id` is accepted with `key`, when the cache knows for sure
    /// (the directory has not changed since a trusted read); `None` when
    /// the files must be read.
    pub fn check(&self, id: &str, key: &PublicKey) -> Option<bool> {
        let stamp = self.stamp().ok()?;
        let snapshot = self.read_snapshot();
        let s = snapshot.as_ref()?;
        s.current(&stamp).then(|| s.keys.get(id) == Some(key))
    }

    fn read_snapshot(&self) -> std::sync::RwLockReadGuard<'_, Option<Snapshot>> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testdir::TestDir;
    use crate::pki::KeyPair;

    fn key() -> PublicKey {
        KeyPair::generate().unwrap().public()
    }

    /// Longer than any timestamp granularity, so the next change moves
    /// the directory's times.
    fn tick() {
        std::thread::sleep(Duration::from_millis(30));
    }

    #[test]
    fn a_fresh_change_is_read_every_time() {
        let d = TestDir::new("accepted-cache");
        let reg = MinionKeys::open(d.path()).unwrap();
        let (a, b) = (key(), key());
        reg.observe("a", &a, true).unwrap();
        let cache = AcceptedCache::new(reg.clone());
        let (keys, read) = cache.get().unwrap();
        assert!(read);
        assert_eq!(keys.get("a"), Some(&a));
        // Just changed: not trusted yet, so every call reads the files.
        assert_eq!(cache.check("a", &a), None);
        assert!(cache.get().unwrap().1);
        reg.observe("b", &b, true).unwrap();
        let (keys, read) = cache.get().unwrap();
        assert!(read && keys.get("b") == Some(&b));
        reg.delete("a").unwrap();
        let (keys, read) = cache.get().unwrap();
        assert!(read && !keys.contains_key("a"));
    }

    #[test]
    fn a_settled_read_answers_until_the_directory_changes() {
        let d = TestDir::new("accepted-settled");
        let reg = MinionKeys::open(d.path()).unwrap();
        let a = key();
        reg.observe("a", &a, true).unwrap();
        let cache = AcceptedCache::new(reg.clone());
        cache.get().unwrap();
        // As if the read had happened SETTLE after the last change.
        {
            let mut s = cache.snapshot.write().unwrap();
            s.as_mut().unwrap().settled = true;
        }
        assert_eq!(cache.check("a", &a), Some(true));
        assert_eq!(cache.check("a", &key()), Some(false));
        assert_eq!(cache.check("x", &a), Some(false));
        let (keys, read) = cache.get().unwrap();
        assert!(!read, "nothing changed: no files read");
        assert_eq!(keys.get("a"), Some(&a));
        tick();
        reg.delete("a").unwrap();
        assert_eq!(cache.check("a", &a), None, "the directory changed");
        let (keys, read) = cache.get().unwrap();
        assert!(read && keys.is_empty());
        // Re-accepting the id with another key is seen too.
        let a2 = key();
        {
            let mut s = cache.snapshot.write().unwrap();
            s.as_mut().unwrap().settled = true;
        }
        tick();
        reg.observe("a", &a2, true).unwrap();
        assert_eq!(cache.check("a", &a2), None);
        assert_eq!(cache.get().unwrap().0.get("a"), Some(&a2));
    }
}
