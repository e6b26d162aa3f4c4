//! N minions in this process (the library's [`Minion`], one task each, in
//! one runtime), each with its own key pair and the master's key pinned in
//! memory. At most [`CONNECTING`] register at once, so the master's accept
//! queue and handshakes are not flooded; the rest wait their turn.
use super::keys::pinned_identity;
use crate::channel::{ChannelConfig, ReconnectPolicy, Router};
use crate::keys::Key;
use crate::minion::{Minion, MinionOptions};
use crate::pki::{KeyPair, PublicKey};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;

/// Minions registering at once. More does not connect faster on 2 cores
/// (the handshakes are CPU-bound), and thousands of ZeroMQ subscriptions
/// arriving together deadlock zeromq 0.7's PUB socket (see the README).
const CONNECTING: usize = 32;
/// How long one minion holds its turn at most (it keeps trying after).
const TURN: Duration = Duration::from_secs(10);
/// No minion became ready for this long: the master is stuck; stop waiting.
const STALL: Duration = Duration::from_secs(30);
/// How long stopping may take before the rest are aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Swarm {
    stops: Vec<oneshot::Sender<()>>,
    tasks: JoinSet<Result<(), crate::Error>>,
    ready: watch::Receiver<usize>,
}

/// Whether minions keep becoming ready: calls `progress` about once a
/// second and says when to stop waiting (all ready, the deadline, or no
/// progress for [`STALL`]).
struct Watch<F> {
    ready: watch::Receiver<usize>,
    n: usize,
    deadline: Instant,
    progress: F,
    reported: Instant,
    seen: (usize, Instant),
}

impl<F: FnMut(usize, usize)> Watch<F> {
    /// True while it is worth waiting for more minions.
    fn going(&mut self) -> bool {
        let (ready, now) = (*self.ready.borrow(), Instant::now());
        if ready != self.seen.0 {
            self.seen = (ready, now);
        }
        if now.duration_since(self.reported) >= Duration::from_secs(1) {
            (self.progress)(ready, self.n);
            self.reported = now;
        }
        ready < self.n && now < self.deadline && now.duration_since(self.seen.1) < STALL
    }

    /// Waits up to a second for all to be ready.
    async fn tick(&mut self) {
        let n = self.n;
        let all = self.ready.wait_for(|c| *c >= n);
        let _ = tokio::time::timeout(Duration::from_secs(1), all).await;
    }
}

/// Starts one minion per key pair on `url` and returns once every one is
/// registered and ready, or at `deadline`, or when none has become ready
/// for [`STALL`] (then [`Swarm::ready`] says how many are). `progress` is
/// called about once a second.
pub(crate) async fn connect(
    url: &str,
    minions: Vec<(String, KeyPair)>,
    master: PublicKey,
    deadline: Instant,
    progress: impl FnMut(usize, usize),
) -> Result<Swarm, crate::Error> {
    let n = minions.len();
    let router = crate::builtin::register(Router::new());
    let opts = MinionOptions {
        backoff: ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        },
        ..MinionOptions::default()
    };
    let (count, ready) = watch::channel(0usize);
    let count = Arc::new(count);
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let now = Instant::now();
    let mut watching = Watch {
        ready: ready.clone(),
        n,
        deadline,
        progress,
        reported: now,
        seen: (0, now),
    };
    let mut swarm = Swarm {
        stops: Vec::with_capacity(n),
        tasks: JoinSet::new(),
        ready,
    };
    'spawn: for (id, keys) in minions {
        let turn = loop {
            if !watching.going() {
                break 'spawn;
            }
            let wait = tokio::time::timeout(Duration::from_secs(1), gate.clone().acquire_owned());
            if let Ok(Ok(turn)) = wait.await {
                break turn;
            }
        };
        let mut cfg = ChannelConfig::new(Key::generate());
        cfg.identity = Some(pinned_identity(keys, &id, master));
        let minion = Minion::new(url, &id, router.clone(), cfg, opts.clone())?;
        let mut registered = minion.ready();
        let (stop, stopped) = oneshot::channel::<()>();
        swarm.tasks.spawn(minion.run(async {
            let _ = stopped.await;
        }));
        swarm.stops.push(stop);
        let count = count.clone();
        tokio::spawn(async move {
            let first = tokio::time::timeout(TURN, registered.wait_for(|r| *r))
                .await
                .map(|r| r.is_ok());
            drop(turn);
            let ok = match first {
                Ok(ok) => ok,
                Err(_) => registered.wait_for(|r| *r).await.is_ok(),
            };
            if ok {
                count.send_modify(|c| *c += 1);
            }
        });
    }
    while watching.going() {
        watching.tick().await;
    }
    Ok(swarm)
}

impl Swarm {
    /// Minions registered and ready so far.
    pub(crate) fn ready(&self) -> usize {
        *self.ready.borrow()
    }

    /// Stops every minion (running jobs finish and return) and waits for
    /// them, up to [`STOP_TIMEOUT`]; the rest are aborted.
    pub(crate) async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        let tasks = &mut self.tasks;
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_TIMEOUT, drained).await.is_err() {
            self.tasks.shutdown().await;
        }
    }
}
