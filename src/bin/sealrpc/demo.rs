//! `sealrpc demo`: a master on TCP, WebSocket and ZeroMQ at once, a client
//! and one minion per transport, all in one process on loopback, tracing
//! into an in-process collector. The client and the TCP minion reach the
//! master through recording relays. Runs five calls, a broadcast job and a
//! targeted job; prints each trace as a tree, then what an eavesdropper saw.
#[path = "demo_pki.rs"]
mod pki;
#[cfg(feature = "otel")]
#[path = "demo_wire.rs"]
mod wire;

use clap::Args;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::{ChannelConfig, Client, HandlerError, Router};
use sealrpc::job::{self, JobReport, PublishRequest};
use sealrpc::keys::Key;
use sealrpc::master::Master;
use sealrpc::minion::{Minion, MinionOptions};
use sealrpc::tap::Tap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Args)]
pub struct DemoArgs {}

const CALLS: &[(&str, &[&str])] = &[
    ("test.ping", &[]),
    ("test.echo", &["hello", "42"]),
    ("test.sleep", &["0.02"]),
    ("test.fail", &[]),
    ("demo.relay", &["via the master"]),
];

const JOBS: &[(&str, &str, &[&str])] = &[
    ("*", "test.ping", &[]),
    ("minion-ws,minion-zmq", "test.echo", &["targeted"]),
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub async fn run(_a: DemoArgs) -> Result<(), String> {
    let key = Key::generate();
    #[cfg(feature = "otel")]
    let (telemetry, collector) = {
        let (t, c) = sealrpc::telemetry::memory::collecting("sealrpc-demo");
        t.install_global();
        (Some(t), c)
    };
    #[cfg(not(feature = "otel"))]
    let telemetry = None;
    let cfg = ChannelConfig::new(key.clone()).with_telemetry(telemetry.clone());
    let master_url: Arc<OnceLock<String>> = Arc::default();
    let urls = [
        "tcp://127.0.0.1:0",
        "ws://127.0.0.1:0/sealrpc",
        "zmq://127.0.0.1:0",
    ];
    let master = Master::bind(
        &urls,
        relay_router(&cfg, &master_url),
        cfg.clone(),
        Default::default(),
    )
    .await
    .map_err(err)?;
    let urls = master.local_urls().map_err(err)?;
    let tcp = urls[0].clone();
    let _ = master_url.set(tcp.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(master.run(async {
        let _ = stop_rx.await;
    }));
    let addr = tcp.trim_start_matches("tcp://").parse().map_err(err)?;
    let (client_tap, minion_tap) = (
        Tap::start(addr).await.map_err(err)?,
        Tap::start(addr).await.map_err(err)?,
    );
    println!("sealrpc demo: a master listening on");
    for url in &urls {
        println!("  {url}");
    }
    let minion_urls = [
        ("minion-tcp", format!("tcp://{}", minion_tap.addr())),
        ("minion-ws", urls[1].clone()),
        ("minion-zmq", urls[2].clone()),
    ];
    let mut minions = Vec::new();
    for (id, url) in &minion_urls {
        minions.push(start_minion(id, url, &cfg).await?);
        println!("minion {id} registered over {url}");
    }
    println!("(the client and minion-tcp reach the master through recording relays)\n");
    let client = Client::connect(&format!("tcp://{}", client_tap.addr()), cfg.clone())
        .await
        .map_err(err)?;
    for (method, args) in CALLS {
        let body = args_body(args).map_err(err)?;
        let call = client.call(method, body);
        let result = match &telemetry {
            Some(t) => t.in_root(&format!("demo {method}"), None, call).await,
            None => call.await,
        };
        match result.and_then(|b| body_json(&b)) {
            Ok(v) => println!("  call {method} {args:?} -> {v}"),
            Err(e) => println!("  call {method} {args:?} -> error: {e}"),
        }
    }
    for (target, method, args) in JOBS {
        // Through the master's publish method, as `sealrpc publish` does.
        let job = publish(&client, target, method, args);
        let report = match &telemetry {
            Some(t) => {
                t.in_root(&format!("demo publish {method}"), None, job)
                    .await
            }
            None => job.await,
        }?;
        let returns: Vec<String> = report
            .returns
            .iter()
            .map(|(id, r)| match body_json(&r.body) {
                Ok(v) if r.ok => format!("{id}: {v}"),
                _ => format!("{id}: error"),
            })
            .collect();
        println!(
            "  publish {method} {args:?} to {target:?} -> job {}: {{{}}}, missing {:?}",
            report.jid,
            returns.join(", "),
            report.missing
        );
    }
    drop(client);
    for (stop, task) in minions {
        let _ = stop.send(());
        let _ = task.await;
    }
    let _ = stop_tx.send(());
    let _ = serving.await;
    #[cfg(feature = "otel")]
    {
        if let Some(t) = &telemetry {
            t.shutdown().await;
        }
        wire::report(&collector.spans(), &[&client_tap, &minion_tap], &key);
    }
    #[cfg(not(feature = "otel"))]
    println!("\n(built without the `otel` feature: no traces)");
    pki::run().await
}

type Stop = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), sealrpc::Error>>,
);

async fn start_minion(id: &str, url: &str, cfg: &ChannelConfig) -> Result<Stop, String> {
    let router = sealrpc::builtin::register(Router::new());
    let minion =
        Minion::new(url, id, router, cfg.clone(), MinionOptions::default()).map_err(err)?;
    let mut ready = minion.ready();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(minion.run(async {
        let _ = rx.await;
    }));
    let registered = tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r))
        .await
        .is_ok_and(|r| r.is_ok());
    if registered {
        Ok((stop, task))
    } else {
        Err(format!("minion {id} did not register within 30 s"))
    }
}

async fn publish(
    client: &Client,
    target: &str,
    method: &str,
    args: &[&str],
) -> Result<JobReport, String> {
    let request = PublishRequest {
        target: target.to_owned(),
        method: method.to_owned(),
        body: serde_bytes::ByteBuf::from(args_body(args).map_err(err)?.to_vec()),
        timeout_ms: 10_000,
    };
    client.call_value(job::PUBLISH, &request).await.map_err(err)
}

/// The master's methods: the built-ins and `demo.relay`, a handler that
/// itself calls the master (a nested trace).
fn relay_router(cfg: &ChannelConfig, master: &Arc<OnceLock<String>>) -> Router {
    let (cfg, url) = (cfg.clone(), master.clone());
    sealrpc::builtin::register(Router::new()).route("demo.relay", move |req| {
        let (cfg, url) = (cfg.clone(), url.get().cloned().unwrap_or_default());
        async move {
            let client = Client::connect(&url, cfg)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
            client
                .call("test.echo", req.body)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))
        }
    })
}
