//! Jobs in progress: who is expected to return, who has.
use crate::job::{JobReport, MinionResult, Undelivered};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::watch;

struct Pending {
    waiting: BTreeSet<String>,
    returns: BTreeMap<String, MinionResult>,
    missing: Vec<String>,
    /// Why the job did not reach some of `missing`.
    undelivered: BTreeMap<String, Undelivered>,
    /// Minions still to return.
    left: watch::Sender<usize>,
}

#[derive(Default)]
pub(crate) struct Jobs {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts job `jid` expecting returns from `expected`; `absent` (not
    /// connected) are missing from the start. Returns a receiver of the
    /// count still to return.
    pub(crate) fn start(
        &self,
        jid: &str,
        expected: impl IntoIterator<Item = String>,
        absent: Vec<String>,
    ) -> watch::Receiver<usize> {
        let waiting: BTreeSet<String> = expected.into_iter().collect();
        let (left, rx) = watch::channel(waiting.len());
        let undelivered = absent
            .iter()
            .map(|id| (id.clone(), Undelivered::NotConnected))
            .collect();
        self.lock().insert(
            jid.to_owned(),
            Pending {
                waiting,
                returns: BTreeMap::new(),
                missing: absent,
                undelivered,
                left,
            },
        );
        rx
    }

    /// The job could not be sent to `id` (`why`): it will not return.
    pub(crate) fn undeliverable(&self, jid: &str, id: &str, why: Undelivered) {
        if let Some(p) = self.lock().get_mut(jid) {
            if p.waiting.remove(id) {
                p.missing.push(id.to_owned());
                p.undelivered.insert(id.to_owned(), why);
                p.left.send_replace(p.waiting.len());
            }
        }
    }

    /// Records `id`'s return; false if the job is unknown (finished) or
    /// did not target `id`, or `id` already returned.
    pub(crate) fn record(&self, jid: &str, id: &str, result: MinionResult) -> bool {
        let mut pending = self.lock();
        let Some(p) = pending.get_mut(jid) else {
            return false;
        };
        if !p.waiting.remove(id) {
            return false;
        }
        p.returns.insert(id.to_owned(), result);
        p.left.send_replace(p.waiting.len());
        true
    }

    /// Ends job `jid`: whoever has not returned is missing.
    pub(crate) fn finish(&self, jid: &str) -> JobReport {
        let Some(p) = self.lock().remove(jid) else {
            return JobReport {
                jid: jid.to_owned(),
                ..JobReport::default()
            };
        };
        let mut missing = p.missing;
        missing.extend(p.waiting);
        missing.sort();
        JobReport {
            jid: jid.to_owned(),
            returns: p.returns,
            missing,
            undelivered: p.undelivered,
        }
    }
}
