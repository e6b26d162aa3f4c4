//! Real network hops: the server (or master) runs in another network
//! namespace, joined to the test's by a veth pair that loses and delays
//! packets (`tc netem`; without it, nftables and a `tc tbf` bottleneck:
//! see `support/netns.rs`), with a blackout in the
//! middle of the run. Calls and jobs complete, a retried call never runs
//! its handler twice, and the outcomes match the requests exactly.
//!
//! Needs root, `ip`, `tc`, and nftables (or tc netem); runs with `SEALRPC_NETNS=1`
//! (`.ci/run` sets it), see README, Reliability.
mod support;

use bytes::Bytes;
use futures::StreamExt;
use sealrpc::channel::{ChannelConfig, Client, HandlerError, ReconnectPolicy, Router};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::attack::{fast, guard};
use support::netns::{self, NetNs};
use tokio::sync::watch;

/// Calls per transport, and how many run at once.
const CALLS: u64 = 300;
const CONCURRENCY: usize = 24;
/// Packets lost per thousand, each way.
const LOSS_PERMILLE: u32 = 30;
/// The blackout starts after this many calls completed, and lasts longer
/// than one try (`TIMEOUT / TRIES`), so calls in flight are retried.
const BLACKOUT_AFTER: usize = 100;
const BLACKOUT: Duration = Duration::from_millis(2500);
const TRIES: u32 = 10;
const TIMEOUT: Duration = Duration::from_secs(20);

/// How many times each key (call number, or minion and job) ran.
type Runs = Arc<Mutex<BTreeMap<String, u32>>>;

fn record(runs: &Runs, key: String) -> Result<(), HandlerError> {
    *runs
        .lock()
        .map_err(|_| HandlerError::new("poisoned"))?
        .entry(key)
        .or_default() += 1;
    Ok(())
}

fn counting_router(runs: &Runs, who: &str) -> Router {
    let (runs, who) = (runs.clone(), who.to_owned());
    Router::new().route("count", move |req| {
        let (runs, who) = (runs.clone(), who.clone());
        async move {
            let n: u64 = req.decode()?;
            record(&runs, format!("{who}{n}"))?;
            Ok(Bytes::from(
                rmp_serde::to_vec(&n).map_err(|e| HandlerError::new(e.to_string()))?,
            ))
        }
    })
}

fn config() -> ChannelConfig {
    let mut cfg = support::attack::base_config();
    cfg.tries = TRIES;
    cfg.timeout = TIMEOUT;
    cfg.reconnect = Some(ReconnectPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    });
    cfg
}

fn url_on(scheme: &str, ip: &str) -> String {
    match scheme {
        "ws" => format!("ws://{ip}:0/sealrpc"),
        s => format!("{s}://{ip}:0"),
    }
}

/// Starts the blackout once `done` reaches `BLACKOUT_AFTER`, for `BLACKOUT`.
fn blackout_midway(ns: &Arc<NetNs>, done: &watch::Sender<usize>) -> tokio::task::JoinHandle<()> {
    let (ns, mut done) = (ns.clone(), done.subscribe());
    tokio::spawn(async move {
        let _ = done.wait_for(|n| *n >= BLACKOUT_AFTER).await;
        ns.blackout(true).expect("blackout on");
        // The fault's length is a parameter of the test, not a wait for an event.
        tokio::time::sleep(BLACKOUT).await;
        ns.blackout(false).expect("blackout off");
    })
}

async fn calls_have_exactly_one_outcome_and_one_run(scheme: &str) {
    if netns::wanted(&format!("netns calls over {scheme}")).is_none() {
        return;
    }
    let mut ns = NetNs::create().expect("network namespace (root, ip)");
    ns.impair(LOSS_PERMILLE, 5).expect("impair the link");
    let ns = Arc::new(ns);
    let rt = ns.runtime().expect("runtime in the namespace");
    let runs = Runs::default();
    let cfg = config();
    let (url, router, server_cfg) = (
        url_on(scheme, &ns.ns_ip),
        counting_router(&runs, ""),
        cfg.clone(),
    );
    let server =
        rt.handle()
            .spawn(async move {
                support::start_at(&url, router, server_cfg, Duration::from_secs(5)).await
            })
            .await
            .expect("server in the namespace");
    let client = Client::connect(&server.url(), cfg)
        .await
        .expect("connect across the veth");
    let done = watch::Sender::new(0usize);
    let blackout = blackout_midway(&ns, &done);
    let took = std::sync::Mutex::new(Vec::new());
    let outcomes: Vec<(u64, Result<u64, String>)> = futures::stream::iter(0..CALLS)
        .map(|n| {
            let (client, done, took) = (client.clone(), &done, &took);
            async move {
                let body = Bytes::from(rmp_serde::to_vec(&n).expect("encode"));
                let start = std::time::Instant::now();
                let r = client.call("count", body).await;
                took.lock().expect("took").push(start.elapsed());
                done.send_modify(|d| *d += 1);
                let r = r
                    .map_err(|e| e.to_string())
                    .and_then(|b| rmp_serde::from_slice(&b).map_err(|e| e.to_string()));
                (n, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    guard("blackout task", blackout).await.expect("blackout");
    let runs = runs.lock().expect("runs").clone();
    let failed: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    let mut took = took.into_inner().expect("took");
    took.sort_unstable();
    eprintln!(
        "{scheme}: {} calls over {}, {} retries sent, {} packets dropped by nftables; \
         {} packets held back by the bottleneck; outcomes {}, ok {}, failed {}, \
         handler runs {}; call time p50 {:?}, p90 {:?}",
        CALLS,
        ns.impairment,
        client.retries_sent(),
        ns.dropped(),
        ns.held_back(),
        outcomes.len(),
        outcomes.len() - failed.len(),
        failed.len(),
        runs.values().sum::<u32>(),
        took[took.len() / 2],
        took[took.len() * 9 / 10],
    );
    // Exactly one outcome per request, each the reply to its own request.
    assert_eq!(outcomes.len() as u64, CALLS);
    let mut seen: Vec<u64> = outcomes.iter().map(|(n, _)| *n).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..CALLS).collect::<Vec<_>>());
    assert!(failed.is_empty(), "calls failed: {failed:?}");
    for (n, r) in &outcomes {
        assert_eq!(r.as_ref().ok(), Some(n), "reply to call {n}");
    }
    // Every call ran exactly once, retried or not.
    assert_eq!(runs.len() as u64, CALLS, "every call ran");
    let twice: Vec<_> = runs.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "handlers run more than once: {twice:?}");
    // The faults were real: calls in flight during the blackout were retried.
    assert!(client.retries_sent() > 0, "the blackout caused no retry");
    drop(client);
    server.stop().await;
}

/// Jobs from a master in the namespace to a minion per transport outside
/// it: every job returns from every minion, each minion runs each job once.
async fn jobs_reach_every_minion_once() {
    if netns::wanted("netns jobs").is_none() {
        return;
    }
    const JOBS: u64 = 40;
    let mut ns = NetNs::create().expect("network namespace (root, ip)");
    ns.impair(LOSS_PERMILLE, 5).expect("impair the link");
    let rt = ns.runtime().expect("runtime in the namespace");
    let runs = Runs::default();
    let mut cfg = config();
    cfg.tries = 1;
    let urls: Vec<String> = ["tcp", "ws", "zmq"]
        .iter()
        .map(|s| url_on(s, &ns.ns_ip))
        .collect();
    let master_cfg = cfg.clone();
    let mut cluster = rt
        .handle()
        .spawn(async move {
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            support::cluster::master_with(&urls, Router::new(), master_cfg, Default::default())
                .await
        })
        .await
        .expect("master in the namespace");
    for scheme in ["tcp", "ws", "zmq"] {
        let url = cluster.url(scheme);
        let id = format!("m-{scheme}");
        let router = counting_router(&runs, &format!("{id}/"));
        cluster
            .minion_with(&url, &id, router, cfg.clone(), fast())
            .await;
    }
    let h = cluster.handle.clone();
    for n in 0..JOBS {
        let body = Bytes::from(rmp_serde::to_vec(&n).expect("encode"));
        let report = guard("job", h.publish("*", "count", body, TIMEOUT))
            .await
            .expect("publish");
        assert!(
            report.missing.is_empty(),
            "job {n}: missing {:?}",
            report.missing
        );
        assert_eq!(
            report.returns.keys().collect::<Vec<_>>(),
            ["m-tcp", "m-ws", "m-zmq"],
            "job {n}"
        );
    }
    let runs = runs.lock().expect("runs").clone();
    eprintln!(
        "jobs: {JOBS} jobs to 3 minions over {}, {} packets dropped by nftables, \
         {} held back by the bottleneck, {} runs",
        ns.impairment,
        ns.dropped(),
        ns.held_back(),
        runs.values().sum::<u32>()
    );
    assert_eq!(runs.len() as u64, 3 * JOBS);
    assert!(runs.values().all(|c| *c == 1), "a job ran twice: {runs:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_calls_over_a_lossy_hop() {
    calls_have_exactly_one_outcome_and_one_run("tcp").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_calls_over_a_lossy_hop() {
    calls_have_exactly_one_outcome_and_one_run("ws").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_calls_over_a_lossy_hop() {
    calls_have_exactly_one_outcome_and_one_run("zmq").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_over_a_lossy_hop() {
    jobs_reach_every_minion_once().await
}
