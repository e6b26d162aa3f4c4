//! The calls waiting for replies on one client connection, and their
//! deadlines.
//!
//! A call's wait for its reply is bounded without a timer per call: each
//! pending call has an `until`, and one sweeper task per connection sleeps
//! until the earliest of them. At a sweep every call past its `until` is
//! dropped from the table, which ends its wait (the caller sees its
//! receiver end without a reply: expired). The earliest `until` is only
//! recomputed at a sweep, so with calls that all have the same timeout the
//! sweeper wakes about once per timeout, whatever the call rate.
use super::hash::IdMap;
use crate::error::{Error, WireError};
use crate::wire::load::ReplyStatus;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

pub(crate) type ReplyResult = Result<(ReplyStatus, Bytes), Error>;

#[derive(Default)]
struct Pending {
    waiting: IdMap<(oneshot::Sender<ReplyResult>, Instant)>,
    /// No pending call's `until` is earlier than this (it may be stale:
    /// that call may have been answered since).
    earliest: Option<Instant>,
    /// Set once the connection is gone: `Some(reason)`.
    closed: Option<Option<WireError>>,
}

impl Pending {
    /// Drops every call past its `until` (at `now`) and returns when the
    /// next sweep is due, if any call is pending.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        if self.earliest.is_some_and(|e| e > now) {
            return self.earliest;
        }
        self.waiting.retain(|_, (_, until)| *until > now);
        self.earliest = self.waiting.values().map(|(_, until)| *until).min();
        self.earliest
    }
}

/// The calls waiting on one connection (shared with its read task).
#[derive(Default)]
pub(crate) struct Waiting {
    pending: Mutex<Pending>,
    /// The connection ended.
    ended: Notify,
    /// A call with an earlier `until` than the sweeper's, or the end.
    rearm: Notify,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the connection ended, once it has.
    pub(crate) fn closed_reason(&self) -> Option<Error> {
        self.lock().closed.as_ref().map(closed_error)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Completes when the connection has ended.
    pub(crate) async fn ended(&self) {
        loop {
            let notified = self.ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Registers call `id`, waiting for its reply until `until`, unless the
    /// connection is already gone.
    pub(crate) fn register(
        &self,
        id: u64,
        tx: oneshot::Sender<ReplyResult>,
        until: Instant,
    ) -> Result<(), Error> {
        let mut p = self.lock();
        if let Some(reason) = &p.closed {
            return Err(closed_error(reason));
        }
        p.waiting.insert(id, (tx, until));
        let sooner = p.earliest.is_none_or(|e| until < e);
        if sooner {
            p.earliest = Some(until);
        }
        drop(p);
        if sooner {
            self.rearm.notify_one();
        }
        Ok(())
    }

    /// Forgets call `id` (replied, timed out, or dropped by its caller).
    pub(crate) fn remove(&self, id: u64) {
        self.lock().waiting.remove(&id);
    }

    /// Hands call `id` its reply, if it still waits.
    pub(crate) fn answer(&self, id: u64, reply: ReplyResult) {
        let waiter = self.lock().waiting.remove(&id);
        if let Some((tx, _)) = waiter {
            let _ = tx.send(reply);
        }
    }

    /// The connection ended: every pending call gets `reason`'s error,
    /// and later registrations fail with it.
    pub(crate) fn close(&self, reason: Option<WireError>) {
        let pending = {
            let mut p = self.lock();
            p.closed = Some(reason.clone());
            std::mem::take(&mut p.waiting)
        };
        for (_, (tx, _)) in pending {
            let _ = tx.send(Err(closed_error(&reason)));
        }
        self.ended.notify_waiters();
        self.rearm.notify_one();
    }

    /// Ends calls at their `until` until the connection ends (see the
    /// module's doc).
    pub(crate) async fn sweep(self: Arc<Self>) {
        loop {
            let rearm = self.rearm.notified();
            tokio::pin!(rearm);
            rearm.as_mut().enable();
            let next = {
                let mut p = self.lock();
                if p.closed.is_some() {
                    return;
                }
                p.expire(Instant::now())
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = rearm => {}
                    }
                }
                None => rearm.await,
            }
        }
    }
}

fn closed_error(reason: &Option<WireError>) -> Error {
    match reason {
        Some(e) => Error::Wire(e.clone()),
        None => Error::ConnectionClosed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_until_is_dropped_and_others_keep_waiting() {
        let w = Arc::new(Waiting::default());
        tokio::spawn(w.clone().sweep());
        let t0 = Instant::now();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        let (tx3, rx3) = oneshot::channel();
        w.register(1, tx1, t0 + Duration::from_secs(5)).unwrap();
        w.register(2, tx2, t0 + Duration::from_secs(9)).unwrap();
        // Sooner than the sweeper's next sweep: it must rearm.
        w.register(3, tx3, t0 + Duration::from_secs(2)).unwrap();
        assert!(rx3.await.is_err());
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_secs(2) && at < Duration::from_millis(2010),
            "{at:?}"
        );
        w.answer(1, Ok((ReplyStatus::Ok, Bytes::from_static(b"x"))));
        assert_eq!(rx1.await.unwrap().unwrap().1, Bytes::from_static(b"x"));
        assert!(rx2.await.is_err());
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_secs(9) && at < Duration::from_millis(9010),
            "{at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn closing_fails_pending_calls_and_ends_the_sweeper() {
        let w = Arc::new(Waiting::default());
        let sweeper = tokio::spawn(w.clone().sweep());
        let (tx, rx) = oneshot::channel();
        w.register(7, tx, Instant::now() + Duration::from_secs(60))
            .unwrap();
        w.close(None);
        assert!(matches!(rx.await, Ok(Err(Error::ConnectionClosed))));
        sweeper.await.unwrap();
        let (tx, _rx) = oneshot::channel();
        assert!(matches!(
            w.register(8, tx, Instant::now()),
            Err(Error::ConnectionClosed)
        ));
    }
}
