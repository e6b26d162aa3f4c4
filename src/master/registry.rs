//! The minions connected to a master: each id bound to the connection it
//! registered over, and how jobs reach it (down that connection, or on its
//! ZeroMQ topic once its subscription is confirmed).
//!
//! Registering costs O(1), whatever the number of minions: the count of
//! ready minions is kept as entries change, and entries whose connection
//! closed are swept out by [`Registry::prune`] (every second, and before
//! a publish or a wait resolves), not on every registration.
use crate::channel::PeerLink;
use crate::error::Error;
use crate::job::Target;
use crate::pki::PublicKey;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// How a job reaches a minion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Down the minion's own connection (TCP, WebSocket).
    Link,
    /// On its topic of the master's ZeroMQ PUB socket.
    Topic,
}

struct Entry {
    link: PeerLink,
    delivery: Delivery,
    /// ZeroMQ: the probe token, until the minion confirms it (then `None`).
    probe: Option<String>,
    /// The key its handshake authenticated (identity mode).
    key: Option<PublicKey>,
    /// ZeroMQ: the publish-key epoch the minion holds.
    epoch: u32,
}

impl Entry {
    fn ready(&self) -> bool {
        self.probe.is_none() && self.link.is_open()
    }
}

/// The entries and how many of them have confirmed (`probe` is `None`),
/// their connection open or not.
#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    confirmed: usize,
}

impl Entries {
    fn insert(&mut self, id: String, e: Entry) {
        self.confirmed += usize::from(e.probe.is_none());
        if let Some(old) = self.map.insert(id, e) {
            self.confirmed -= usize::from(old.probe.is_none());
        }
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let old = self.map.remove(id)?;
        self.confirmed -= usize::from(old.probe.is_none());
        Some(old)
    }

    /// Drops the entries whose connection closed: O(n).
    fn prune(&mut self) {
        self.map.retain(|_, e| e.link.is_open());
        self.confirmed = self.map.values().filter(|e| e.probe.is_none()).count();
    }
}

/// id → entry, plus a count of ready minions to wait on.
pub(crate) struct Registry {
    entries: Mutex<Entries>,
    /// Confirmed entries; an upper bound on the ready ones until the next
    /// prune (a connection that closed is noticed there).
    ready: watch::Sender<usize>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            entries: Mutex::default(),
            ready: watch::Sender::new(0),
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the entries whose connection closed (O(n); every second).
    pub(crate) fn prune(&self) {
        let mut entries = self.lock();
        entries.prune();
        self.publish_count(&entries);
    }

    /// Registers `id` over `link`; a ZeroMQ minion (`probe` set) becomes
    /// ready only once it confirms the probe. An id registered over another
    /// live connection is refused (no takeover of a connected minion).
    pub(crate) fn hello(
        &self,
        id: &str,
        link: PeerLink,
        probe: Option<String>,
        key: Option<PublicKey>,
        epoch: u32,
    ) -> Result<(), Error> {
        let mut entries = self.lock();
        if let Some(e) = entries.map.get(id) {
            if e.link.is_open() && !e.link.same_connection(&link) {
                return Err(Error::Publish(format!(
                    "minion {id} is already connected over another connection"
                )));
            }
        }
        let delivery = if probe.is_some() {
            Delivery::Topic
        } else {
            Delivery::Link
        };
        entries.insert(
            id.to_owned(),
            Entry {
                link,
                delivery,
                probe,
                key,
                epoch,
            },
        );
        self.publish_count(&entries);
        Ok(())
    }

    /// A ZeroMQ minion confirms it received its probe.
    pub(crate) fn confirm(&self, id: &str, link: &PeerLink, token: &str) -> Result<(), Error> {
        let mut guard = self.lock();
        let entries = &mut *guard;
        match entries.map.get_mut(id) {
            Some(e) if e.link.same_connection(link) && e.probe.as_deref() == Some(token) => {
                e.probe = None;
                entries.confirmed += 1;
            }
            Some(e) if e.link.same_connection(link) && e.probe.is_none() => {}
            _ => return Err(Error::Publish(format!("minion {id} has no pending probe"))),
        }
        self.publish_count(entries);
        Ok(())
    }

    /// The probe token still pending for `id` on `link`.
    pub(crate) fn pending_probe(&self, id: &str, link: &PeerLink) -> Option<String> {
        let entries = self.lock();
        let e = entries.map.get(id)?;
        (e.link.is_open() && e.link.same_connection(link))
            .then(|| e.probe.clone())
            .flatten()
    }

    /// Whether `id` registered over `link` (a return must come from there).
    pub(crate) fn registered_on(&self, id: &str, link: &PeerLink) -> bool {
        self.lock()
            .map
            .get(id)
            .is_some_and(|e| e.link.same_connection(link))
    }

    /// The ready minions `target` selects, sorted by id. A ZeroMQ minion
    /// that does not hold publish-key `epoch` yet gets jobs down its
    /// connection instead.
    pub(crate) fn resolve(&self, target: &Target, epoch: u32) -> Vec<(String, Delivery, PeerLink)> {
        let mut entries = self.lock();
        entries.prune();
        self.publish_count(&entries);
        let mut out: Vec<_> = entries
            .map
            .iter()
            .filter(|(id, e)| e.ready() && target.matches(id))
            .map(|(id, e)| {
                let delivery = match e.delivery {
                    Delivery::Topic if e.epoch != epoch => Delivery::Link,
                    d => d,
                };
                (id.clone(), delivery, e.link.clone())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The ids of the ready minions, sorted.
    pub(crate) fn ready_ids(&self) -> Vec<String> {
        self.resolve(&Target::All, 0)
            .into_iter()
            .map(|m| m.0)
            .collect()
    }

    /// Removes (and returns) the minions whose key `keep` no longer accepts.
    pub(crate) fn cut(&self, keep: impl Fn(&str, &PublicKey) -> bool) -> Vec<(String, PeerLink)> {
        let mut entries = self.lock();
        let gone: Vec<String> = entries
            .map
            .iter()
            .filter(|(id, e)| e.key.as_ref().is_some_and(|k| !keep(id, k)))
            .map(|(id, _)| id.clone())
            .collect();
        let out = gone
            .into_iter()
            .filter_map(|id| entries.remove(&id).map(|e| (id, e.link)))
            .collect();
        self.publish_count(&entries);
        out
    }

    /// The ZeroMQ minions (they need the publish key), with their links.
    pub(crate) fn topic_minions(&self) -> Vec<(String, PeerLink)> {
        self.lock()
            .map
            .iter()
            .filter(|(_, e)| e.delivery == Delivery::Topic && e.link.is_open())
            .map(|(id, e)| (id.clone(), e.link.clone()))
            .collect()
    }

    /// Minion `id` (over `link`) now holds publish-key `epoch`.
    pub(crate) fn holds_epoch(&self, id: &str, link: &PeerLink, epoch: u32) -> bool {
        match self.lock().map.get_mut(id) {
            Some(e) if e.link.same_connection(link) => {
                e.epoch = e.epoch.max(epoch);
                true
            }
            _ => false,
        }
    }

    /// Completes once at least `n` minions are ready.
    pub(crate) async fn wait_for(&self, n: usize) {
        let mut rx = self.ready.subscribe();
        loop {
            // The count may include closed connections: prune to be sure.
            if *rx.borrow_and_update() >= n {
                self.prune();
                if *rx.borrow_and_update() >= n {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn publish_count(&self, entries: &Entries) {
        let n = entries.confirmed;
        self.ready
            .send_if_modified(|c| std::mem::replace(c, n) != n);
    }
}
