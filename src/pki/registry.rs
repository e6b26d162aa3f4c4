//! The master's registry of minion keys, Salt-style, on disk under the
//! master's PKI dir: `minions/{accepted,pending,rejected,denied}/ID`, each
//! file holding the minion's public key in hex. Every call re-reads the
//! files: `sealrpc key` edits them from another process while the master
//! runs ([`AcceptedCache`](super::AcceptedCache) keeps the accepted keys in
//! memory between changes). The admin operations (accept, reject, delete)
//! are in `manage.rs`.
use super::error::{check_id, PkiError};
use super::fsutil;
use super::pubkey::PublicKey;
use std::path::{Path, PathBuf};

/// Where a minion's key stands with the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// The admin (or auto-accept) accepted it: the minion may connect.
    Accepted,
    /// Seen, waiting for the admin.
    Pending,
    /// Refused by the admin.
    Rejected,
    /// A different key for an id that already had one: refused until the
    /// admin deletes the id. Never replaces the original key.
    Denied,
    /// Never seen.
    Unknown,
}

impl KeyState {
    /// The states that have a directory, in listing order.
    pub const STORED: [KeyState; 4] = [
        KeyState::Accepted,
        KeyState::Pending,
        KeyState::Rejected,
        KeyState::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Accepted => "accepted",
            KeyState::Pending => "pending",
            KeyState::Rejected => "rejected",
            KeyState::Denied => "denied",
            KeyState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored key, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub id: String,
    pub state: KeyState,
    pub fingerprint: String,
}

/// One change made by an admin operation (`to` is `Unknown` for a deletion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub from: KeyState,
    pub to: KeyState,
}

/// The keys stored for one id, indexed like [`KeyState::STORED`].
pub(super) struct Stored([Option<PublicKey>; 4]);

impl Stored {
    pub(super) fn get(&self, s: KeyState) -> Option<PublicKey> {
        KeyState::STORED
            .iter()
            .position(|x| *x == s)
            .and_then(|i| self.0[i])
    }

    /// The verdict for a presented key: an accepted, rejected or pending key
    /// decides (the same key keeps its state; a different one is Denied);
    /// otherwise a denied entry alone means Denied.
    fn judge(&self, key: &PublicKey) -> KeyState {
        for s in [KeyState::Accepted, KeyState::Rejected, KeyState::Pending] {
            if let Some(k) = self.get(s) {
                return if k == *key { s } else { KeyState::Denied };
            }
        }
        match self.get(KeyState::Denied) {
            Some(_) => KeyState::Denied,
            None => KeyState::Unknown,
        }
    }
}

/// The minion key registry of one master PKI dir.
#[derive(Clone, Debug)]
pub struct MinionKeys {
    root: PathBuf,
}

impl MinionKeys {
    /// Opens `PKI_DIR/minions`, creating its state directories (mode 0700).
    pub fn open(pki_dir: &Path) -> Result<MinionKeys, PkiError> {
        let root = pki_dir.join("minions");
        for s in KeyState::STORED {
            fsutil::ensure_dir(&root.join(s.as_str()))?;
        }
        Ok(MinionKeys { root })
    }

    pub(super) fn state_dir(&self, state: KeyState) -> PathBuf {
        self.root.join(state.as_str())
    }

    pub(super) fn path(&self, state: KeyState, id: &str) -> PathBuf {
        self.state_dir(state).join(id)
    }

    pub(super) fn read(&self, state: KeyState, id: &str) -> Result<Option<PublicKey>, PkiError> {
        PublicKey::read_file(&self.path(state, id))
    }

    pub(super) fn stored(&self, id: &str) -> Result<Stored, PkiError> {
        let mut keys = [None; 4];
        for (slot, s) in keys.iter_mut().zip(KeyState::STORED) {
            *slot = self.read(s, id)?;
        }
        Ok(Stored(keys))
    }

    /// The ids stored in one state, sorted. Names that are not valid ids
    /// (temporary files, strays) are skipped.
    pub(super) fn ids_in(&self, state: KeyState) -> Result<Vec<String>, PkiError> {
        let dir = self.root.join(state.as_str());
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| PkiError::io(&dir, e))? {
            let entry = entry.map_err(|e| PkiError::io(&dir, e))?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if let (true, Ok(id)) = (is_file, entry.file_name().into_string()) {
                if check_id(&id).is_ok() {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The state of `key` for `id`, without changing anything.
    pub fn state(&self, id: &str, key: &PublicKey) -> Result<KeyState, PkiError> {
        check_id(id)?;
        Ok(self.stored(id)?.judge(key))
    }

    /// What a master calls after a handshake. A new id is filed as pending
    /// (accepted with `auto_accept`); with `auto_accept` a pending key with
    /// the same key is accepted. A key different from the one stored for the
    /// id is written to `denied/ID`, the original kept, and Denied returned.
    pub fn observe(
        &self,
        id: &str,
        key: &PublicKey,
        auto_accept: bool,
    ) -> Result<KeyState, PkiError> {
        check_id(id)?;
        let text = key.file_text();
        // Each retry follows a concurrent writer's change; three is plenty.
        for _ in 0..3 {
            let stored = self.stored(id)?;
            match stored.judge(key) {
                KeyState::Denied => {
                    if stored.get(KeyState::Denied) != Some(*key) {
                        fsutil::write_atomic(
                            &self.path(KeyState::Denied, id),
                            text.as_bytes(),
                            0o644,
                        )?;
                    }
                    tracing::warn!(minion = id, fingerprint = %key.fingerprint(),
                        "minion key denied: a different key is stored for this id");
                    return Ok(KeyState::Denied);
                }
                KeyState::Pending if auto_accept => {
                    let (from, to) = (
                        self.path(KeyState::Pending, id),
                        self.path(KeyState::Accepted, id),
                    );
                    if fsutil::move_new(&from, &to)? {
                        return Ok(KeyState::Accepted);
                    }
                }
                KeyState::Unknown => {
                    let s = if auto_accept {
                        KeyState::Accepted
                    } else {
                        KeyState::Pending
                    };
                    if fsutil::create_new(&self.path(s, id), text.as_bytes(), 0o644)? {
                        return Ok(s);
                    }
                }
                s => return Ok(s),
            }
        }
        Err(PkiError::Raced { id: id.to_owned() })
    }

    /// Every stored key, sorted by state then id.
    pub fn list(&self) -> Result<Vec<KeyEntry>, PkiError> {
        let mut out = Vec::new();
        for state in KeyState::STORED {
            for id in self.ids_in(state)? {
                if let Some(k) = self.read(state, &id)? {
                    let fingerprint = k.fingerprint();
                    out.push(KeyEntry {
                        id,
                        state,
                        fingerprint,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The accepted minions and their keys, sorted by id. A malformed file is
    /// skipped with a warning: that minion is then simply not accepted.
    pub fn accepted_keys(&self) -> Result<Vec<(String, PublicKey)>, PkiError> {
        let mut out = Vec::new();
        for id in self.ids_in(KeyState::Accepted)? {
            match self.read(KeyState::Accepted, &id) {
                Ok(Some(k)) => out.push((id, k)),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping an accepted minion key: {e}"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
