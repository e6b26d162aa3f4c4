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
//!
//! A reply is handed over in the table itself: each call's entry holds its
//! caller's waker until the reply takes its place (no channel, so no
//! allocation per call).
use super::hash::IdMap;
use crate::error::{Error, WireError};
use crate::wire::load::ReplyStatus;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) type ReplyResult = Result<(ReplyStatus, Bytes), Error>;

/// One call's place in the table.
struct Entry {
    slot: Slot,
    until: Instant,
}

enum Slot {
    /// No reply yet: the caller's waker, once it has polled.
    Waiting(Option<Waker>),
    /// The reply (or the connection's end), until the caller takes it.
    Answered(ReplyResult),
}

impl Entry {
    /// Puts `result` in the slot if it still waits; returns whom to wake.
    fn answer(&mut self, result: impl FnOnce() -> ReplyResult) -> Option<Waker> {
        match &mut self.slot {
            Slot::Waiting(waker) => {
                let waker = waker.take();
                self.slot = Slot::Answered(result());
                waker
            }
            Slot::Answered(_) => None,
        }
    }
}

#[derive(Default)]
struct Pending {
    waiting: IdMap<Entry>,
    /// No pending call's `until` is earlier than this (it may be stale:
    /// that call may have been answered since).
    earliest: Option<Instant>,
    /// Set once the connection is gone: `Some(reason)`.
    closed: Option<Option<WireError>>,
}

impl Pending {
    /// Drops every unanswered call past its `until` (at `now`), adding
    /// its waker to `wake`, and returns when the next sweep is due, if any
    /// call is pending. An answered call keeps its reply for its caller.
    fn expire(&mut self, now: Instant, wake: &mut Vec<Waker>) -> Option<Instant> {
        if self.earliest.is_some_and(|e| e > now) {
            return self.earliest;
        }
        self.waiting.retain(|_, e| match &mut e.slot {
            Slot::Waiting(waker) if e.until <= now => {
                wake.extend(waker.take());
                false
            }
            _ => true,
        });
        self.earliest = self
            .waiting
            .values()
            .filter(|e| matches!(e.slot, Slot::Waiting(_)))
            .map(|e| e.until)
            .min();
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
    pub(crate) fn register(&self, id: u64, until: Instant) -> Result<(), Error> {
        let mut p = self.lock();
        if let Some(reason) = &p.closed {
            return Err(closed_error(reason));
        }
        let slot = Slot::Waiting(None);
        p.waiting.insert(id, Entry { slot, until });
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
        let waker = self
            .lock()
            .waiting
            .get_mut(&id)
            .and_then(|e| e.answer(|| reply));
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Call `id`'s reply: `Some` once answered (or the connection ended),
    /// `None` if it is no longer waiting (its `until` passed). Either way
    /// its entry is gone when this returns.
    pub(crate) async fn reply(&self, id: u64) -> Option<ReplyResult> {
        std::future::poll_fn(|cx| self.poll_reply(id, cx)).await
    }

    fn poll_reply(&self, id: u64, cx: &mut Context<'_>) -> Poll<Option<ReplyResult>> {
        let mut p = self.lock();
        let Some(entry) = p.waiting.get_mut(&id) else {
            return Poll::Ready(None);
        };
        match &mut entry.slot {
            Slot::Waiting(Some(w)) if w.will_wake(cx.waker()) => Poll::Pending,
            Slot::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Slot::Answered(_) => match p.waiting.remove(&id) {
                Some(Entry {
                    slot: Slot::Answered(reply),
                    ..
                }) => Poll::Ready(Some(reply)),
                _ => Poll::Ready(None),
            },
        }
    }

    /// The connection ended: every pending call gets `reason`'s error,
    /// and later registrations fail with it.
    pub(crate) fn close(&self, reason: Option<WireError>) {
        let wake: Vec<Waker> = {
            let mut p = self.lock();
            p.closed = Some(reason.clone());
            p.waiting
                .values_mut()
                .filter_map(|e| e.answer(|| Err(closed_error(&reason))))
                .collect()
        };
        wake.into_iter().for_each(Waker::wake);
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
            let mut expired = Vec::new();
            let next = {
                let mut p = self.lock();
                if p.closed.is_some() {
                    return;
                }
                p.expire(Instant::now(), &mut expired)
            };
            expired.into_iter().for_each(Waker::wake);
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
        w.register(1, t0 + Duration::from_secs(5)).unwrap();
        w.register(2, t0 + Duration::from_secs(9)).unwrap();
        // Sooner than the sweeper's next sweep: it must rearm.
        w.register(3, t0 + Duration::from_secs(2)).unwrap();
        assert!(w.reply(3).await.is_none());
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_secs(2) && at < Duration::from_millis(2010),
            "{at:?}"
        );
        w.answer(1, Ok((ReplyStatus::Ok, Bytes::from_static(b"x"))));
        assert_eq!(
            w.reply(1).await.unwrap().unwrap().1,
            Bytes::from_static(b"x")
        );
        assert!(w.reply(2).await.is_none());
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
        w.register(7, Instant::now() + Duration::from_secs(60))
            .unwrap();
        w.close(None);
        assert!(matches!(
            w.reply(7).await,
            Some(Err(Error::ConnectionClosed))
        ));
        sweeper.await.unwrap();
        assert!(matches!(
            w.register(8, Instant::now()),
            Err(Error::ConnectionClosed)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_came_in_time_outlives_its_until() {
        let w = Arc::new(Waiting::default());
        tokio::spawn(w.clone().sweep());
        w.register(1, Instant::now() + Duration::from_secs(1))
            .unwrap();
        w.answer(1, Ok((ReplyStatus::Ok, Bytes::from_static(b"in time"))));
        // A later call makes the sweeper run past the first one's until.
        w.register(2, Instant::now() + Duration::from_secs(2))
            .unwrap();
        assert!(w.reply(2).await.is_none(), "call 2 expires");
        let reply = w.reply(1).await.expect("kept").expect("ok");
        assert_eq!(reply.1, Bytes::from_static(b"in time"));
        assert!(w.reply(1).await.is_none(), "taken once");
    }

    #[tokio::test]
    async fn a_caller_already_waiting_is_woken_by_its_answer_and_by_the_end() {
        let w = Arc::new(Waiting::default());
        let far = Instant::now() + Duration::from_secs(60);
        w.register(1, far).unwrap();
        w.register(2, far).unwrap();
        let (w1, w2) = (w.clone(), w.clone());
        let one = tokio::spawn(async move { w1.reply(1).await });
        let two = tokio::spawn(async move { w2.reply(2).await });
        // Both have polled (and parked) once their wakers are in the table.
        while w
            .lock()
            .waiting
            .values()
            .any(|e| matches!(e.slot, Slot::Waiting(None)))
        {
            tokio::task::yield_now().await;
        }
        w.answer(1, Ok((ReplyStatus::Ok, Bytes::from_static(b"1"))));
        let reply = one.await.unwrap().expect("answered").expect("ok");
        assert_eq!(reply.1, Bytes::from_static(b"1"));
        w.close(None);
        assert!(matches!(
            two.await.unwrap(),
            Some(Err(Error::ConnectionClosed))
        ));
        assert!(w.lock().waiting.is_empty(), "both entries taken");
    }
}
