//! The server's retry table: every attempt of one call carries the call's
//! retry key, and the handler runs once per key. A retry that arrives while
//! the first attempt runs waits for its result; one that arrives after it
//! gets the stored reply. Entries live for the keep time given (the
//! caller's deadline and a second, see `Conn::dispatch`), and the table
//! is bounded in entries and stored bytes: when it is full a retryable call
//! is refused without running (`ReplyStatus::Overloaded`), never run twice.
use crate::wire::load::ReplyStatus;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A finished call's reply, as stored and as handed to waiting retries.
pub(crate) type Stored = (ReplyStatus, Bytes);

enum Entry {
    Running(Vec<oneshot::Sender<Stored>>),
    Done(Stored),
}

struct Table {
    entries: HashMap<Box<[u8]>, Entry>,
    /// Done entries in the order they expire (keep times are pushed in
    /// finishing order; a longer keep only makes an entry live longer).
    expiry: VecDeque<(Instant, Box<[u8]>)>,
    bytes: usize,
}

/// Shared by all connections of one server.
pub(crate) struct RetryTable {
    table: Mutex<Table>,
    max_entries: usize,
    max_bytes: usize,
}

/// What to do with an attempt.
pub(crate) enum Begin {
    /// First attempt: run the handler, then `Runner::finish`.
    Run(Runner),
    /// The first attempt is running: its result arrives here (an error if
    /// it was cancelled, e.g. by shutdown).
    Wait(oneshot::Receiver<Stored>),
    /// The call already ran: its reply.
    Done(Stored),
    /// The table is full: refuse without running.
    Full,
}

/// The right to run a key's handler. Dropped without `finish` (the work
/// was cancelled), the key is forgotten and waiting retries fail.
pub(crate) struct Runner {
    table: Arc<RetryTable>,
    key: Option<Box<[u8]>>,
    keep: Duration,
}

impl RetryTable {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Arc<RetryTable> {
        Arc::new(RetryTable {
            table: Mutex::new(Table {
                entries: HashMap::new(),
                expiry: VecDeque::new(),
                bytes: 0,
            }),
            max_entries: max_entries.max(1),
            max_bytes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `key` up; `keep` is how long its reply is kept once done.
    pub(crate) fn begin(self: &Arc<Self>, key: &[u8], keep: Duration) -> Begin {
        let now = Instant::now();
        let mut t = self.lock();
        t.expire(now);
        match t.entries.get_mut(key) {
            Some(Entry::Done(stored)) => return Begin::Done(stored.clone()),
            Some(Entry::Running(waiters)) => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                return Begin::Wait(rx);
            }
            None => {}
        }
        if t.entries.len() >= self.max_entries || t.bytes >= self.max_bytes {
            return Begin::Full;
        }
        let key: Box<[u8]> = key.into();
        t.entries.insert(key.clone(), Entry::Running(Vec::new()));
        Begin::Run(Runner {
            table: self.clone(),
            key: Some(key),
            keep,
        })
    }

    /// Entries held (running and done).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Table {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.expiry.pop_front() else {
                break;
            };
            if let Some(Entry::Done((_, body))) = self.entries.remove(&key) {
                self.bytes = self.bytes.saturating_sub(body.len());
            }
        }
    }
}

impl Runner {
    /// Stores the reply and hands it to every waiting retry.
    pub(crate) fn finish(mut self, status: ReplyStatus, body: &Bytes) {
        let Some(key) = self.key.take() else {
            return;
        };
        // A copy: the body may be a slice of a connection's whole read
        // buffer, which a kept slice would pin for the keep time.
        let stored = (status, Bytes::copy_from_slice(body));
        let mut t = self.table.lock();
        t.bytes += body.len();
        t.expiry
            .push_back((Instant::now() + self.keep, key.clone()));
        if let Some(Entry::Running(waiters)) = t.entries.insert(key, Entry::Done(stored.clone())) {
            drop(t);
            for w in waiters {
                let _ = w.send(stored.clone());
            }
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Cancelled: forget the key (waiters' receivers then fail).
            self.table.lock().entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static [u8]) -> Bytes {
        Bytes::from_static(body)
    }

    #[tokio::test]
    async fn one_run_per_key_and_retries_share_its_reply() {
        let t = RetryTable::new(10, 1 << 20);
        let Begin::Run(runner) = t.begin(b"k", Duration::from_secs(60)) else {
            panic!("first attempt must run");
        };
        let Begin::Wait(rx) = t.begin(b"k", Duration::from_secs(60)) else {
            panic!("a retry while running must wait");
        };
        runner.finish(ReplyStatus::Ok, &ok(b"r"));
        assert_eq!(rx.await.expect("result"), (ReplyStatus::Ok, ok(b"r")));
        match t.begin(b"k", Duration::from_secs(60)) {
            Begin::Done(s) => assert_eq!(s, (ReplyStatus::Ok, ok(b"r"))),
            _ => panic!("a retry after the run must get the stored reply"),
        }
        assert!(matches!(
            t.begin(b"other", Duration::from_secs(60)),
            Begin::Run(_)
        ));
    }

    #[tokio::test]
    async fn a_cancelled_run_fails_its_waiters_and_frees_the_key() {
        let t = RetryTable::new(10, 1 << 20);
        let Begin::Run(runner) = t.begin(b"k", Duration::from_secs(60)) else {
            panic!("first attempt must run");
        };
        let Begin::Wait(rx) = t.begin(b"k", Duration::from_secs(60)) else {
            panic!("must wait");
        };
        drop(runner);
        assert!(rx.await.is_err());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn full_tables_refuse_and_expired_replies_are_forgotten() {
        let t = RetryTable::new(2, 1 << 20);
        for k in [b"a", b"b"] {
            let Begin::Run(r) = t.begin(k, Duration::ZERO) else {
                panic!("must run");
            };
            r.finish(ReplyStatus::Ok, &ok(b"x"));
        }
        // Both kept for zero time: expired on the next lookup.
        assert!(matches!(
            t.begin(b"c", Duration::from_secs(60)),
            Begin::Run(_)
        ));
        let t = RetryTable::new(1, 1 << 20);
        let _running = t.begin(b"a", Duration::from_secs(60));
        assert!(matches!(
            t.begin(b"b", Duration::from_secs(60)),
            Begin::Full
        ));
        let t = RetryTable::new(10, 1);
        let Begin::Run(r) = t.begin(b"a", Duration::from_secs(60)) else {
            panic!("must run");
        };
        r.finish(ReplyStatus::Ok, &ok(b"xy"));
        assert!(matches!(
            t.begin(b"b", Duration::from_secs(60)),
            Begin::Full
        ));
    }
}
