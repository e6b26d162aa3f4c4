//! Idempotent retries (`ChannelConfig::tries`), on every transport: a call
//! whose reply is lost, whose connection breaks, or that is still running
//! when its try times out is sent again, and the server runs its handler
//! once. A relay in the middle drops or spoils frames and counts the
//! request attempts, so each test also proves the retry really happened.
mod support;

use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, Client, ReconnectPolicy, Router};
use sealrpc::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::attack::{guard, listen_url, Counter, Gate};
use support::relay::{Action, Dir, Hook, Relay};
use tokio::sync::watch;

const REQUEST: [u8; 4] = [0x53, 0x52, 0x01, 0x01];
const REPLY: [u8; 4] = [0x53, 0x52, 0x01, 0x02];

fn config(tries: u32) -> ChannelConfig {
    let mut cfg = support::attack::base_config();
    cfg.tries = tries;
    cfg.timeout = Duration::from_secs(6);
    cfg.reconnect = Some(ReconnectPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
    });
    cfg
}

/// Counts request frames going up; applies `down` to the n-th reply
/// (from 0) going down.
fn hook(requests: Requests, down: impl Fn(usize) -> Action + Send + Sync + 'static) -> Hook {
    let replies = AtomicUsize::new(0);
    Arc::new(move |_, dir, frame| {
        let head = frame.get(..4);
        if dir == Dir::Up && head == Some(&REQUEST[..]) {
            requests.send_modify(|n| *n += 1);
        }
        if dir == Dir::Down && head == Some(&REPLY[..]) {
            return down(replies.fetch_add(1, Ordering::SeqCst));
        }
        Action::Forward
    })
}

/// Request attempts seen by the relay (a watch: tests wait on a count).
type Requests = Arc<watch::Sender<usize>>;

fn requests() -> Requests {
    Arc::new(watch::Sender::new(0))
}

fn seen(requests: &Requests) -> usize {
    *requests.borrow()
}

async fn server(scheme: &str, router: Router, cfg: &ChannelConfig) -> support::Running {
    support::start_at(&listen_url(scheme), router, cfg.clone(), Duration::ZERO).await
}

fn decoded(reply: &Bytes) -> serde_json::Value {
    rmp_serde::from_slice(reply).expect("reply body")
}

/// The first reply vanishes: the try times out, the call is sent again on
/// the same connection, and gets the stored reply: one run.
async fn lost_reply_is_retried_and_runs_once(scheme: &str) {
    let cfg = config(3);
    let runs = Counter::default();
    let srv = server(scheme, runs.route(Router::new(), "count"), &cfg).await;
    let requests = requests();
    let drop_first = hook(requests.clone(), |n| match n {
        0 => Action::Replace(Vec::new()),
        _ => Action::Forward,
    });
    let relay = Relay::start(&srv.url(), drop_first).await;
    let client = Client::connect(&relay.url, cfg).await.expect("connect");
    let reply = guard("retried call", client.call("count", Bytes::new())).await;
    assert_eq!(decoded(&reply.expect("call")), serde_json::json!(true));
    assert_eq!(seen(&requests), 2, "two attempts were sent");
    assert_eq!(runs.get(), 1, "the handler ran once for two attempts");
    drop(client);
    srv.stop().await;
}

/// The first reply is spoiled: the client's connection fails on it, the
/// call reconnects and is sent again on a new connection: one run.
async fn broken_connection_is_retried_on_a_new_one_and_runs_once(scheme: &str) {
    let cfg = config(3);
    let runs = Counter::default();
    let srv = server(scheme, runs.route(Router::new(), "count"), &cfg).await;
    let requests = requests();
    let spoil_first = hook(requests.clone(), |n| match n {
        0 => Action::Replace(vec![Bytes::from_static(b"not an envelope")]),
        _ => Action::Forward,
    });
    let relay = Relay::start(&srv.url(), spoil_first).await;
    let client = Client::connect(&relay.url, cfg).await.expect("connect");
    let reply = guard("retried call", client.call("count", Bytes::new())).await;
    assert_eq!(decoded(&reply.expect("call")), serde_json::json!(true));
    relay.accepted(2).await;
    assert_eq!(seen(&requests), 2, "two attempts were sent");
    assert_eq!(runs.get(), 1, "the handler ran once for two attempts");
    drop(client);
    srv.stop().await;
}

/// The handler is still running when the first try times out: the retry
/// waits for that run's result instead of starting another.
async fn retry_while_running_waits_for_the_first_run(scheme: &str) {
    let mut cfg = config(2);
    cfg.timeout = Duration::from_millis(800);
    let gate = Gate::default();
    let srv = server(scheme, gate.route(Router::new(), "held", "done"), &cfg).await;
    let requests = requests();
    let relay = Relay::start(&srv.url(), hook(requests.clone(), |_| Action::Forward)).await;
    let client = Client::connect(&relay.url, cfg).await.expect("connect");
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call("held", Bytes::new()).await }
    });
    gate.started(1).await;
    // The second attempt is on the wire once the relay has seen it.
    let mut attempts = requests.subscribe();
    guard("second attempt", attempts.wait_for(|n| *n >= 2))
        .await
        .expect("relay");
    gate.release(1);
    let reply = guard("call", call).await.expect("task").expect("call");
    assert_eq!(decoded(&reply), serde_json::json!("done"));
    assert_eq!(seen(&requests), 2);
    srv.stop().await;
    assert_eq!(
        gate.started_now(),
        1,
        "the handler started once for two attempts"
    );
}

/// With one try (the default) a lost reply is the call's timeout: nothing
/// is sent twice and no retry key is on the wire.
async fn one_try_sends_once(scheme: &str) {
    let mut cfg = config(1);
    cfg.timeout = Duration::from_millis(300);
    let runs = Counter::default();
    let srv = server(scheme, runs.route(Router::new(), "count"), &cfg).await;
    let requests = requests();
    let drop_all = hook(requests.clone(), |_| Action::Replace(Vec::new()));
    let relay = Relay::start(&srv.url(), drop_all).await;
    let client = Client::connect(&relay.url, cfg).await.expect("connect");
    let err = guard("call", client.call("count", Bytes::new()))
        .await
        .expect_err("the reply was dropped");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(seen(&requests), 1);
    runs.reached(1).await;
    drop(client);
    srv.stop().await;
}

macro_rules! per_transport {
    ($($scheme:ident),*) => {$(
        mod $scheme {
            #[tokio::test]
            async fn lost_reply_is_retried_and_runs_once() {
                super::lost_reply_is_retried_and_runs_once(stringify!($scheme)).await
            }
            #[tokio::test]
            async fn broken_connection_is_retried_on_a_new_one_and_runs_once() {
                super::broken_connection_is_retried_on_a_new_one_and_runs_once(stringify!($scheme)).await
            }
            #[tokio::test]
            async fn retry_while_running_waits_for_the_first_run() {
                super::retry_while_running_waits_for_the_first_run(stringify!($scheme)).await
            }
            #[tokio::test]
            async fn one_try_sends_once() {
                super::one_try_sends_once(stringify!($scheme)).await
            }
        }
    )*};
}

per_transport!(tcp, ws, zmq);
