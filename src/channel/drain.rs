//! Graceful shutdown of a [`Server`](super::Server): the phases every
//! connection follows once the server's shutdown future completes, and the
//! count of handlers running across all connections that ends the drain.
//!
//! 1. [`Phase::Serving`].
//! 2. [`Phase::Draining`]: the server stops accepting. TCP and WebSocket
//!    listeners are closed, so the OS refuses new connections. A ZeroMQ
//!    listener stays bound (its one socket also carries the connections
//!    already open, and dropping it would cut them) and every new
//!    connection on it is dropped as soon as it arrives. Open connections
//!    keep reading: a request for a method marked
//!    [`Router::serve_while_draining`](super::Router::serve_while_draining)
//!    (a minion's return of a job being published) runs; every other
//!    request is refused without running, and its caller gets
//!    `Error::Overloaded`. The phase ends as soon as no handler runs on
//!    any connection, or when the grace period ends.
//! 3. [`Phase::Closing`]: each connection stops reading, lets handlers
//!    that just started finish, flushes its replies and closes.
//! 4. [`Phase::Aborting`], only if the grace period ended first: each
//!    connection cancels the handlers still running (their SERVER spans
//!    end with status error, `error.type` = `cancelled`) and closes at
//!    once, without waiting for a peer that does not read its replies.
//!    Their callers see the connection close (`Error::ConnectionClosed`).
//!
//! However a connection closes gracefully (Closing), its last frame is
//! the going-away alert, after every reply, and the server waits (up to
//! `GOODBYE_WAIT`, 1 s) for the peer to close first. zeromq's DEALER drops
//! what it buffered when the server disconnects first: a reply sent just
//! before the close was lost about 2 runs in 5 under load before this.
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Where a server is in its shutdown (ordered: later phases compare greater).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Serving,
    Draining,
    Closing,
    Aborting,
}

/// Handlers running on all of a server's connections. Each connection
/// reports its own count after every event it handles (a few atomic
/// operations when the count changed, nothing otherwise).
#[derive(Default)]
pub(crate) struct Busy {
    running: AtomicUsize,
    idle: Notify,
}

impl Busy {
    /// A connection now runs `now` handlers; `was` is what it reported
    /// last (updated).
    pub(crate) fn report(&self, was: &mut usize, now: usize) {
        match now.cmp(was) {
            std::cmp::Ordering::Equal => return,
            std::cmp::Ordering::Greater => {
                self.running.fetch_add(now - *was, Ordering::AcqRel);
            }
            std::cmp::Ordering::Less => {
                let gone = *was - now;
                if self.running.fetch_sub(gone, Ordering::AcqRel) == gone {
                    self.idle.notify_waiters();
                }
            }
        }
        *was = now;
    }

    /// Completes once no handler runs on any connection.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change in between is not lost.
            notified.as_mut().enable();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_once_every_connection_reports_zero() {
        let busy = Busy::default();
        let (mut a, mut b) = (0, 0);
        busy.report(&mut a, 3);
        busy.report(&mut b, 1);
        let idle = busy.idle();
        tokio::pin!(idle);
        assert!(futures::poll!(idle.as_mut()).is_pending());
        busy.report(&mut a, 1);
        busy.report(&mut a, 0);
        assert!(
            futures::poll!(idle.as_mut()).is_pending(),
            "b still runs one"
        );
        busy.report(&mut b, 0);
        assert!(futures::poll!(idle.as_mut()).is_ready());
        assert_eq!((a, b), (0, 0));
        // Idle at once when nothing runs.
        let again = busy.idle();
        tokio::pin!(again);
        assert!(futures::poll!(again.as_mut()).is_ready());
    }
}
