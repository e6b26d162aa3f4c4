//! The soak (`sealrpc soak`): a master on TCP, WebSocket and ZeroMQ at
//! once, clients and minions on each transport behind fault-injecting
//! relays ([`chaos`]), a million requests and a stream of published jobs,
//! and exact accounting of every outcome.
//!
//! - **Requests.** Request `i` carries `i`; the master's handler counts
//!   the runs of each `i` and answers `i`. Clients retry (`tries`), so a
//!   cut or a lost frame costs a retry, never a second run. Every request
//!   ends as succeeded (its own reply), or failed with a typed error kind;
//!   `lost` (no outcome) and `duplicated` (a handler run more than once)
//!   must be 0.
//! - **Jobs.** Published to `*` one after the other while the requests
//!   run; each minion counts its runs of each job. Every targeted minion
//!   is either in the job's returns or in its missing list; a minion being
//!   reconnected when a job goes out is not targeted. A minion must never
//!   run a job twice.
//! - **Faults.** Each relayed frame is lost with probability `rate / 2`,
//!   and cuts its connection with probability `rate / 2`. ZeroMQ publishes
//!   go from the master's PUB socket straight to the minions (the relays
//!   carry the request paths only).
mod chaos;
mod report;

pub use chaos::Faults;
pub use report::{JobCounts, RequestCounts, SoakReport};

use crate::channel::{ChannelConfig, Client, HandlerError, ReconnectPolicy, Router};
use crate::error::Error;
use crate::keys::Key;
use crate::master::{Master, MasterOptions};
use crate::minion::{Minion, MinionOptions};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Requests in all, spread over the transports.
    pub requests: u64,
    /// Jobs published to every minion, one after the other.
    pub jobs: u64,
    /// `tcp`, `ws`, `zmq` (at least one).
    pub transports: Vec<String>,
    /// Minions per transport.
    pub minions: usize,
    /// Requests in flight per transport.
    pub inflight: usize,
    /// Fault probability per relayed frame (half cuts, half losses).
    pub fault_rate: f64,
    /// Attempts per request.
    pub tries: u32,
    /// Deadline of a request (all its tries) and of a job.
    pub timeout: Duration,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            requests: 1_000_000,
            jobs: 1000,
            transports: vec!["tcp".into(), "ws".into(), "zmq".into()],
            minions: 2,
            inflight: 64,
            fault_rate: 0.0002,
            tries: 5,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Per-key run counters (saturating at 255).
struct Runs(Vec<AtomicU8>);

impl Runs {
    fn new(n: usize) -> Arc<Runs> {
        Arc::new(Runs((0..n).map(|_| AtomicU8::new(0)).collect()))
    }

    fn ran(&self, i: u64) -> Result<(), HandlerError> {
        let c = usize::try_from(i)
            .ok()
            .and_then(|i| self.0.get(i))
            .ok_or_else(|| HandlerError::new("soak: key out of range"))?;
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_add(1));
        Ok(())
    }

    fn count(&self, i: usize) -> u8 {
        self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

fn counting(method: &'static str, runs: &Arc<Runs>, offset: u64) -> Router {
    let runs = runs.clone();
    Router::new().route(method, move |req| {
        let runs = runs.clone();
        async move {
            let i: u64 = req.decode()?;
            runs.ran(offset.saturating_add(i))?;
            Ok(req.body.clone())
        }
    })
}

fn url(scheme: &str) -> String {
    match scheme {
        "ws" => "ws://127.0.0.1:0/sealrpc".into(),
        s => format!("{s}://127.0.0.1:0"),
    }
}

fn config(key: &Key, opts: &SoakOptions) -> ChannelConfig {
    let mut cfg = ChannelConfig::new(key.clone());
    cfg.tries = opts.tries.max(1);
    cfg.timeout = opts.timeout;
    // Room for every call of the run's rate within a deadline (~150 MB at
    // the limit; the default is a quarter of it).
    cfg.retry_entries = 1 << 20;
    cfg.reconnect = Some(ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(500),
    });
    cfg
}

/// Runs the soak; `progress` is called about once a second with the
/// requests finished so far.
pub async fn run(opts: &SoakOptions, progress: impl Fn(u64) + Send) -> Result<SoakReport, Error> {
    for t in &opts.transports {
        if !["tcp", "ws", "zmq"].contains(&t.as_str()) {
            return Err(Error::BadAddress(format!("{t}://")));
        }
    }
    let schemes = opts.transports.clone();
    if schemes.is_empty() {
        return Err(Error::BadAddress(String::new()));
    }
    let key = Key::generate();
    let cfg = config(&key, opts);
    let started = Instant::now();
    let requests = Runs::new(usize::try_from(opts.requests).unwrap_or(usize::MAX));
    let minion_count = schemes.len() * opts.minions.max(1);
    let job_slots = usize::try_from(opts.jobs).unwrap_or(usize::MAX);
    let job_runs = Runs::new(minion_count.saturating_mul(job_slots));

    let urls: Vec<String> = schemes.iter().map(|s| url(s)).collect();
    let router = counting("soak.echo", &requests, 0);
    let master = Master::bind(&urls, router, cfg.clone(), MasterOptions::default()).await?;
    let bound = master.local_urls()?;
    let handle = master.handle();
    let (stop_master, stopped) = tokio::sync::oneshot::channel::<()>();
    let master_task = tokio::spawn(master.run(async {
        let _ = stopped.await;
    }));

    let faults = Arc::new(Faults::default());
    let mut relays = Vec::new();
    for u in &bound {
        relays.push(chaos::Chaos::start(u, opts.fault_rate, cfg.max_frame, faults.clone()).await?);
    }

    // Minions: job j run by minion m counts at m * jobs + j.
    let mut minions = Vec::new();
    let mut ids = Vec::new();
    for (t, relay) in relays.iter().enumerate() {
        for k in 0..opts.minions.max(1) {
            let m = ids.len() as u64;
            let id = format!("soak-{}-{k}", schemes[t]);
            let router = counting("soak.job", &job_runs, m.saturating_mul(opts.jobs));
            let mopts = MinionOptions {
                backoff: cfg.reconnect.unwrap_or_default(),
                ..Default::default()
            };
            let minion = Minion::new(&relay.url, &id, router, cfg.clone(), mopts)?;
            let mut ready = minion.ready();
            let (stop, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(minion.run(async {
                let _ = rx.await;
            }));
            let _ = tokio::time::timeout(opts.timeout, ready.wait_for(|r| *r)).await;
            minions.push((stop, task));
            ids.push(id);
        }
    }

    let done = Arc::new(AtomicU64::new(0));
    let per = opts.requests / schemes.len() as u64;
    let mut drivers = Vec::new();
    for (t, relay) in relays.iter().enumerate() {
        let first = per * t as u64;
        let last = if t + 1 == schemes.len() {
            opts.requests
        } else {
            first + per
        };
        let client = Client::connect(&relay.url, cfg.clone()).await?;
        let (done, inflight) = (done.clone(), opts.inflight.max(1));
        drivers.push(tokio::spawn(drive(client, first..last, inflight, done)));
    }
    let publisher = {
        let (handle, jobs, timeout) = (handle.clone(), opts.jobs, opts.timeout);
        tokio::spawn(async move { publish_jobs(&handle, jobs, timeout).await })
    };

    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            progress(done.load(Ordering::Relaxed));
        }
    };
    let finished = async {
        let mut outcomes = RequestCounts::default();
        for d in drivers {
            let o = d.await.map_err(|e| Error::Body(e.to_string()))?;
            outcomes.merge(o);
        }
        let jobs = publisher.await.map_err(|e| Error::Body(e.to_string()))?;
        Ok::<_, Error>((outcomes, jobs))
    };
    let (mut outcomes, mut jobs) = tokio::select! {
        r = finished => r?,
        _ = ticker => unreachable!("the ticker never ends"),
    };
    progress(done.load(Ordering::Relaxed));
    let elapsed = started.elapsed();

    for (stop, task) in minions {
        let _ = stop.send(());
        let _ = task.await;
    }
    let _ = stop_master.send(());
    let _ = master_task.await;
    drop(relays);

    outcomes.duplicated = (0..requests.0.len())
        .filter(|&i| requests.count(i) > 1)
        .count() as u64;
    outcomes.ran = (0..requests.0.len())
        .filter(|&i| requests.count(i) > 0)
        .count() as u64;
    jobs.duplicated = (0..job_runs.0.len())
        .filter(|&i| job_runs.count(i) > 1)
        .count() as u64;
    jobs.ran = (0..job_runs.0.len())
        .map(|i| u64::from(job_runs.count(i)))
        .sum();
    jobs.untargeted = (ids.len() as u64 * (jobs.published - jobs.refused))
        .saturating_sub(jobs.returned + jobs.failed + jobs.missing);
    Ok(SoakReport {
        transports: schemes,
        minions: ids.len(),
        fault_rate: opts.fault_rate,
        tries: cfg.tries,
        elapsed_s: elapsed.as_secs_f64(),
        requests: outcomes,
        jobs,
        cuts: faults.cuts.load(Ordering::Relaxed),
        drops: faults.drops.load(Ordering::Relaxed),
        frames: faults.frames.load(Ordering::Relaxed),
        peak_rss_kib: report::peak_rss_kib(),
    })
}

/// Sends requests `range` with `inflight` at once; counts the outcomes.
async fn drive(
    client: Client,
    range: std::ops::Range<u64>,
    inflight: usize,
    done: Arc<AtomicU64>,
) -> RequestCounts {
    let sent = range.end - range.start;
    let mut counts = futures::stream::iter(range)
        .map(|i| {
            let (client, done) = (client.clone(), done.clone());
            async move {
                let body = rmp_serde::to_vec(&i).map(Bytes::from);
                let outcome = match body {
                    Ok(body) => match client.call("soak.echo", body).await {
                        Ok(reply) => match rmp_serde::from_slice::<u64>(&reply) {
                            Ok(r) if r == i => Ok(()),
                            _ => Err("wrong_reply"),
                        },
                        Err(e) => Err(crate::channel::error_kind(&e)),
                    },
                    Err(_) => Err("encode"),
                };
                done.fetch_add(1, Ordering::Relaxed);
                outcome
            }
        })
        .buffer_unordered(inflight)
        .fold(RequestCounts::default(), |mut c, outcome| async move {
            c.record(outcome);
            c
        })
        .await;
    counts.retries = client.retries_sent();
    counts.sent = sent;
    counts
}

/// Publishes `jobs` jobs to `*`, one after the other.
async fn publish_jobs(
    handle: &crate::master::MasterHandle,
    jobs: u64,
    timeout: Duration,
) -> JobCounts {
    let mut c = JobCounts::default();
    for j in 0..jobs {
        c.published += 1;
        let Ok(body) = rmp_serde::to_vec(&j) else {
            c.refused += 1;
            continue;
        };
        match handle.publish("*", "soak.job", body.into(), timeout).await {
            Ok(report) => {
                c.returned += report.returns.values().filter(|r| r.ok).count() as u64;
                c.failed += report.returns.values().filter(|r| !r.ok).count() as u64;
                c.missing += report.missing.len() as u64;
            }
            // e.g. no minion connected at that moment (all being reconnected).
            Err(_) => c.refused += 1,
        }
    }
    c
}
