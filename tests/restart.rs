//! The master killed under load and started again, on every transport:
//! calls in flight end with a typed error at once (not at their deadline),
//! nothing hangs, clients reconnect on their own with jittered exponential
//! backoff, spread out rather than in lockstep, and later calls succeed.
mod support;

use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, Client, ReconnectPolicy, Server};
use sealrpc::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::attack::{guard, listen_url};
use tokio::sync::watch;
use tokio::time::Instant;

const CLIENTS: usize = 40;
/// Pings each client completes before the kill (the kill comes under load).
const LOADED: u64 = 20;
/// The slow call in flight on each client when the master dies.
const SLOW: &str = "10";
const POLICY: ReconnectPolicy = ReconnectPolicy {
    initial: Duration::from_millis(100),
    max: Duration::from_millis(1000),
};

fn config() -> ChannelConfig {
    let mut cfg = support::attack::base_config();
    cfg.reconnect = Some(POLICY);
    cfg.timeout = Duration::from_secs(15);
    cfg
}

/// Binds and runs a server with the built-ins; the task is aborted (the
/// master "killed": every socket closes at once) by dropping the handle.
async fn master(url: &str, cfg: &ChannelConfig) -> (String, tokio::task::JoinHandle<()>) {
    let server = Server::bind(url, support::builtins(), cfg.clone())
        .await
        .expect("bind");
    let url = server.local_url().expect("url");
    let task = tokio::spawn(async move {
        let _ = server.run(std::future::pending::<()>()).await;
    });
    (url, task)
}

async fn killed_under_load_and_restarted(scheme: &str) {
    let cfg = config();
    let (url, first) = master(&listen_url(scheme), &cfg).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let c = Client::connect(&url, cfg.clone()).await.expect("connect");
        c.call("test.ping", Bytes::new()).await.expect("ping");
        clients.push(c);
    }
    // A slow call in flight on every client.
    let started = watch::Sender::new(0usize);
    let body = sealrpc::builtin::args_body(&[SLOW]).expect("body");
    let slow: Vec<_> = clients
        .iter()
        .map(|c| {
            let (c, body) = (c.clone(), body.clone());
            tokio::spawn(async move { c.call("test.sleep", body).await })
        })
        .collect();
    // Load: each client keeps pinging until the master is killed (a ping
    // started just before may wait for the restart, within its deadline).
    let dead = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = clients
        .iter()
        .map(|c| {
            let (c, started, dead) = (c.clone(), started.clone(), dead.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while !dead.load(Ordering::SeqCst)
                    && c.call("test.ping", Bytes::new()).await.is_ok()
                {
                    ok += 1;
                    if ok == LOADED {
                        started.send_modify(|n| *n += 1);
                    }
                }
                ok
            })
        })
        .collect();
    let mut all_started = started.subscribe();
    guard("load", all_started.wait_for(|n| *n == CLIENTS))
        .await
        .expect("load");
    let killed = Instant::now();
    dead.store(true, Ordering::SeqCst);
    first.abort();
    let _ = first.await;
    // Every call in flight ends with a typed error, long before its deadline.
    for s in slow {
        let r = guard("slow call", s).await.expect("task");
        match r {
            Err(Error::ConnectionClosed | Error::Transport(_)) => {}
            other => panic!("slow call in flight: {other:?}"),
        }
    }
    let ended = killed.elapsed();
    assert!(
        ended < Duration::from_secs(5),
        "in-flight calls took {ended:?} to fail (deadline {:?})",
        cfg.timeout
    );
    // Down for a while: every client keeps trying, backing off.
    let retrying: Vec<_> = clients
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move {
                let r = c.call("test.ping", Bytes::new()).await;
                (Instant::now(), r)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await; // how long the master is down
    let (url2, second) = master(&url, &cfg).await;
    assert_eq!(url2, url);
    let restarted = Instant::now();
    let mut back = Vec::new();
    for r in retrying {
        let (at, result) = guard("reconnect", r).await.expect("task");
        result.expect("the call made while the master was down succeeds once it is back");
        back.push(at.saturating_duration_since(restarted));
    }
    let mut pings = 0;
    for l in load {
        pings += guard("load task", l).await.expect("task");
    }
    back.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let spread = back[CLIENTS * 9 / 10] - back[CLIENTS / 10];
    // The most reconnects within any 50 ms window.
    let peak = back
        .iter()
        .map(|&a| {
            back.iter()
                .filter(|&&b| b >= a && b < a + Duration::from_millis(50))
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "{scheme}: {pings} pings before the kill; in-flight calls failed within {:.1} ms; \
         reconnected after the restart: first {:.0} ms, median {:.0} ms, last {:.0} ms, \
         p10-p90 spread {:.0} ms, at most {peak} of {CLIENTS} in one 50 ms window",
        ms(ended),
        ms(back[0]),
        ms(back[CLIENTS / 2]),
        ms(back[CLIENTS - 1]),
        ms(spread),
    );
    // Within the longest backoff (plus scheduling) of the restart ...
    assert!(
        back[CLIENTS - 1] < POLICY.max * 3,
        "last reconnect {:?}",
        back[CLIENTS - 1]
    );
    // ... and spread out by the jitter, not in lockstep.
    assert!(
        peak <= CLIENTS / 2,
        "reconnect storm: {peak} of {CLIENTS} within 50 ms"
    );
    assert!(
        spread >= Duration::from_millis(100),
        "spread only {spread:?}"
    );
    for c in &clients {
        c.call("test.ping", Bytes::new())
            .await
            .expect("later calls");
    }
    drop(clients);
    second.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_master_killed_under_load() {
    killed_under_load_and_restarted("tcp").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_master_killed_under_load() {
    killed_under_load_and_restarted("ws").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_master_killed_under_load() {
    killed_under_load_and_restarted("zmq").await
}
