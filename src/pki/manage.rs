//! The admin operations on the minion key registry (what `sealrpc key` runs):
//! accept, reject and delete one id, or every id at once. Each returns the
//! changes it made so the caller can print them.
use super::error::{check_id, PkiError};
use super::fsutil;
use super::registry::{Change, KeyState, MinionKeys};

impl MinionKeys {
    /// Accepts `id`'s pending (or rejected) key. Refused while the id has a
    /// denied key: delete it first. Already accepted: no change.
    pub fn accept(&self, id: &str) -> Result<Vec<Change>, PkiError> {
        check_id(id)?;
        let stored = self.stored(id)?;
        if stored.get(KeyState::Denied).is_some() {
            return Err(PkiError::Denied { id: id.to_owned() });
        }
        let from = [KeyState::Pending, KeyState::Rejected]
            .into_iter()
            .find(|s| stored.get(*s).is_some());
        match from {
            Some(from) => Ok(vec![self.move_key(id, from, KeyState::Accepted)?]),
            None if stored.get(KeyState::Accepted).is_some() => Ok(Vec::new()),
            None => Err(self.nothing(id, "accept", "pending or rejected")),
        }
    }

    /// Rejects `id`'s pending or accepted key. Already rejected: no change.
    pub fn reject(&self, id: &str) -> Result<Vec<Change>, PkiError> {
        check_id(id)?;
        let stored = self.stored(id)?;
        let mut changes = Vec::new();
        for from in [KeyState::Accepted, KeyState::Pending] {
            if stored.get(from).is_some() {
                changes.push(self.move_key(id, from, KeyState::Rejected)?);
            }
        }
        if changes.is_empty() && stored.get(KeyState::Rejected).is_none() {
            return Err(self.nothing(id, "reject", "pending or accepted"));
        }
        Ok(changes)
    }

    /// Removes `id` from every state.
    pub fn delete(&self, id: &str) -> Result<Vec<Change>, PkiError> {
        check_id(id)?;
        let mut changes = Vec::new();
        for from in KeyState::STORED {
            if fsutil::remove(&self.path(from, id))? {
                let (id, to) = (id.to_owned(), KeyState::Unknown);
                changes.push(Change { id, from, to });
            }
        }
        if changes.is_empty() {
            return Err(PkiError::UnknownMinion { id: id.to_owned() });
        }
        Ok(changes)
    }

    /// Accepts every pending key, except those of ids that also have a
    /// denied key (skipped with a warning). Rejected keys stay rejected.
    pub fn accept_all(&self) -> Result<Vec<Change>, PkiError> {
        self.each(KeyState::Pending, |id| self.accept(id))
    }

    /// Rejects every pending key. Accepted keys stay accepted.
    pub fn reject_all(&self) -> Result<Vec<Change>, PkiError> {
        self.each(KeyState::Pending, |id| {
            Ok(vec![self.move_key(
                id,
                KeyState::Pending,
                KeyState::Rejected,
            )?])
        })
    }

    /// Deletes every stored key, in every state.
    pub fn delete_all(&self) -> Result<Vec<Change>, PkiError> {
        let mut changes = Vec::new();
        for state in KeyState::STORED {
            changes.extend(self.each(state, |id| self.delete(id))?);
        }
        Ok(changes)
    }

    /// Runs `op` on every id stored in `state`. An id that fails (denied,
    /// changed meanwhile) is skipped with a warning; I/O on the directory fails.
    fn each(
        &self,
        state: KeyState,
        op: impl Fn(&str) -> Result<Vec<Change>, PkiError>,
    ) -> Result<Vec<Change>, PkiError> {
        let mut changes = Vec::new();
        for id in self.ids_in(state)? {
            match op(&id) {
                Ok(c) => changes.extend(c),
                Err(PkiError::UnknownMinion { .. } | PkiError::NothingTo { .. }) => {}
                Err(e) => tracing::warn!("skipped: {e}"),
            }
        }
        Ok(changes)
    }

    /// Moves `id` from one state to another, never over a different key.
    fn move_key(&self, id: &str, from: KeyState, to: KeyState) -> Result<Change, PkiError> {
        let (src, dst) = (self.path(from, id), self.path(to, id));
        let change = Change {
            id: id.to_owned(),
            from,
            to,
        };
        if fsutil::move_new(&src, &dst)? {
            return Ok(change);
        }
        // The target exists: fine if it holds the same key.
        let key = self.read(from, id)?;
        if key.is_some() && key == self.read(to, id)? {
            fsutil::remove(&src)?;
            return Ok(change);
        }
        Err(PkiError::Conflict {
            id: id.to_owned(),
            state: to,
        })
    }

    /// Why there was nothing to do: the id is unknown, or in the wrong state.
    fn nothing(&self, id: &str, action: &'static str, wanted: &'static str) -> PkiError {
        let id = id.to_owned();
        match KeyState::STORED.iter().any(|s| self.path(*s, &id).exists()) {
            false => PkiError::UnknownMinion { id },
            true => PkiError::NothingTo { id, action, wanted },
        }
    }
}
