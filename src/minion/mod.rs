//! A minion: connects to its master, registers its id, receives the jobs
//! published to it (down its connection on TCP and WebSocket, on its
//! ZeroMQ topic otherwise), runs each job's handler inside a CONSUMER span
//! and sends the result back over request/reply. It re-registers by itself,
//! with jittered exponential backoff, whenever the master goes away.
mod identity;
mod session;

pub use identity::connecting_identity;

use crate::channel::{ChannelConfig, ReconnectPolicy, Router};
use crate::error::Error;
use crate::telemetry::ConsumerMode;
use crate::wire::envelope::unix_ms;
use crate::wire::SessionRegistry;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Minion settings beyond the channel's.
#[derive(Clone, Debug)]
pub struct MinionOptions {
    /// CONSUMER span: child of the master's PRODUCER span, or linked to it.
    pub consumer: ConsumerMode,
    /// Jobs queued between the connection and the runner (backpressure).
    pub queue: usize,
    /// Jobs run at once; more wait their turn.
    pub max_jobs: usize,
    /// Backoff between failed registrations.
    pub backoff: ReconnectPolicy,
    /// On shutdown, how long running jobs may go on to finish and return.
    /// Jobs still running then are stopped and return a failure; a job
    /// that arrives after shutdown began is not run and returns a failure
    /// at once (see [`Minion::run`]).
    pub grace: Duration,
}

impl Default for MinionOptions {
    fn default() -> Self {
        MinionOptions {
            consumer: ConsumerMode::Child,
            queue: 1024,
            max_jobs: 256,
            backoff: ReconnectPolicy::default(),
            grace: Duration::from_secs(5),
        }
    }
}

/// A minion, not yet running.
pub struct Minion {
    pub(crate) id: String,
    pub(crate) master: String,
    pub(crate) router: Router,
    pub(crate) cfg: ChannelConfig,
    pub(crate) opts: MinionOptions,
    pub(crate) ready: watch::Sender<bool>,
    /// Set once shutdown began and the minion takes no new job.
    stopping: watch::Sender<bool>,
}

impl Minion {
    /// A minion `id` of the master at `master_url`, running `router`'s
    /// methods as jobs.
    pub fn new(
        master_url: &str,
        id: &str,
        router: Router,
        mut cfg: ChannelConfig,
        opts: MinionOptions,
    ) -> Result<Minion, Error> {
        crate::job::validate_id(id)?;
        crate::channel::parse_url(master_url)?;
        // The minion re-registers itself after a loss; its client must not
        // quietly reconnect without registering.
        cfg.reconnect = None;
        Ok(Minion {
            id: id.to_owned(),
            master: master_url.to_owned(),
            router,
            cfg,
            opts,
            ready: watch::Sender::new(false),
            stopping: watch::Sender::new(false),
        })
    }

    /// True while registered with the master and able to receive jobs.
    /// Do not hold the borrow `wait_for`/`borrow` return across an await:
    /// it blocks the minion's own updates of the flag.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Completes once shutdown has begun and the minion runs no new job
    /// (at once if it has, or if the minion is gone).
    pub fn stopped_taking_jobs(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }

    /// Runs until `shutdown` completes: registers, serves jobs, and after
    /// any loss of the master registers again with jittered backoff.
    ///
    /// On shutdown it runs no new job: each job that arrives is answered
    /// with a failed return ("shutting down: the job was not run"), so its
    /// publisher does not wait out its timeout. Running jobs finish and
    /// return, for up to [`MinionOptions::grace`]; those still running then
    /// are stopped and return a failure ("shut down before the job
    /// finished"), given up to 1 s more to send it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let me = Arc::new(self);
        // Publishes sealed before this minion started are replays by definition.
        let registry =
            Arc::new(SessionRegistry::new(me.cfg.ttl_ms(), 4096).with_not_before(unix_ms()));
        tokio::pin!(shutdown);
        let (stop, stopping) = watch::channel(false);
        let mut failures = 0u32;
        loop {
            let serving = session::serve(me.clone(), registry.clone(), stopping.clone());
            tokio::pin!(serving);
            let registered = tokio::select! {
                r = &mut serving => r,
                _ = &mut shutdown => {
                    // Stop taking jobs; let running ones finish and return.
                    stop.send_replace(true);
                    me.stopping.send_replace(true);
                    let _ = serving.await;
                    break;
                }
            };
            me.ready.send_replace(false);
            match registered {
                Ok(()) => failures = 0,
                Err(e) => {
                    tracing::warn!("minion {}: {e}", me.id);
                    failures = failures.saturating_add(1);
                }
            }
            let wait = backoff(&me.opts.backoff, failures);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        me.stopping.send_replace(true);
        me.ready.send_replace(false);
        Ok(())
    }
}

/// The wait before registering again: none after a session that worked,
/// then `initial` doubling to `max`, each drawn from its upper half.
fn backoff(policy: &ReconnectPolicy, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = policy
        .initial
        .saturating_mul(1u32 << (failures - 1).min(16));
    exp.min(policy.max)
        .mul_f64(0.5 + rand::random::<f64>() * 0.5)
}
