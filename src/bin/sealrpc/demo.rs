//! `sealrpc demo`: a master and a client in one process on loopback, a
//! recording relay between them, tracing into an in-process collector.
//! Prints every trace as a tree, then what an eavesdropper saw.
use clap::Args;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::{ChannelConfig, Client, HandlerError, Router, Server};
use sealrpc::keys::Key;
use sealrpc::tap::Tap;
#[cfg(feature = "otel")]
use sealrpc::{
    tap::{contains, split_frames},
    wire::{envelope::unix_ms, Kind, Opener, RequestLoad, SessionRegistry},
};
use std::sync::{Arc, OnceLock};

#[derive(Args)]
pub struct DemoArgs {}

const CALLS: &[(&str, &[&str])] = &[
    ("test.ping", &[]),
    ("test.echo", &["hello", "42"]),
    ("test.sleep", &["0.02"]),
    ("test.fail", &[]),
    ("demo.relay", &["via the master"]),
];

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
    // demo.relay: a handler that itself calls the master (a nested trace).
    let master: Arc<OnceLock<String>> = Arc::default();
    let (inner_cfg, url) = (cfg.clone(), master.clone());
    let router = sealrpc::builtin::register(Router::new()).route("demo.relay", move |req| {
        let (cfg, url) = (inner_cfg.clone(), url.get().cloned().unwrap_or_default());
        async move {
            let client = Client::connect(&url, cfg)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
            client
                .call("test.echo", req.body)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))
        }
    });
    let server = Server::bind("tcp://127.0.0.1:0", router, cfg.clone())
        .await
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let _ = master.set(format!("tcp://{addr}"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stop_rx.await;
    }));
    let tap = Tap::start(addr).await.map_err(|e| e.to_string())?;
    let client = Client::connect(&format!("tcp://{}", tap.addr()), cfg)
        .await
        .map_err(|e| e.to_string())?;
    println!("sealrpc demo: master on tcp://{addr}, client connected through a recording relay\n");
    for (method, args) in CALLS {
        let body = args_body(args).map_err(|e| e.to_string())?;
        let call = client.call(method, body);
        let result = match &telemetry {
            Some(t) => t.in_root(&format!("demo {method}"), None, call).await,
            None => call.await,
        };
        match result.and_then(|b| body_json(&b)) {
            Ok(v) => println!("  {method} {args:?} -> {v}"),
            Err(e) => println!("  {method} {args:?} -> error: {e}"),
        }
    }
    drop(client);
    let _ = stop_tx.send(());
    let _ = serving.await;
    #[cfg(feature = "otel")]
    {
        if let Some(t) = &telemetry {
            t.shutdown().await;
        }
        let spans = collector.spans();
        println!(
            "\n{} spans in {} traces:\n",
            spans.len(),
            count_traces(&spans)
        );
        print!("{}", sealrpc::telemetry::memory::render_trees(&spans));
        eavesdropper(&tap, &key, &spans);
    }
    #[cfg(not(feature = "otel"))]
    println!("\n(built without the `otel` feature: no traces)");
    Ok(())
}

#[cfg(feature = "otel")]
fn count_traces(spans: &[opentelemetry_sdk::trace::SpanData]) -> usize {
    let ids: std::collections::HashSet<_> =
        spans.iter().map(|s| s.span_context.trace_id()).collect();
    ids.len()
}

#[cfg(feature = "otel")]
fn eavesdropper(tap: &Tap, key: &Key, spans: &[opentelemetry_sdk::trace::SpanData]) {
    let (up, down) = (tap.to_server(), tap.to_client());
    let wire: Vec<u8> = up.iter().chain(down.iter()).copied().collect();
    let leaked = spans
        .iter()
        .filter(|s| {
            let id = s.span_context.trace_id();
            contains(&wire, &id.to_bytes()) || contains(&wire, id.to_string().as_bytes())
        })
        .count();
    println!(
        "\nOn the wire (what an eavesdropper sees): {} bytes in {} frames",
        wire.len(),
        split_frames(&up).len() + split_frames(&down).len()
    );
    println!("  spans whose trace id appears (hex or raw): {leaked}");
    println!(
        "  the string \"traceparent\" appears: {}",
        if contains(&wire, b"traceparent") {
            "YES"
        } else {
            "no"
        }
    );
    let registry = Arc::new(SessionRegistry::new(60_000, 16));
    let keyring = Arc::new(sealrpc::keys::Keyring::single(key.clone()));
    let mut opener = Opener::new(keyring, registry, Kind::Request, 60_000, usize::MAX);
    let (mut opened, mut traced) = (0, 0);
    for mut frame in split_frames(&up) {
        if let Ok(o) = opener.open(&mut frame, unix_ms()) {
            opened += 1;
            if let Ok(load) = sealrpc::wire::load::decode::<RequestLoad>(&frame[o.load]) {
                traced += usize::from(load.trace.0.iter().any(|(k, _)| *k == "traceparent"));
            }
        }
    }
    println!("With the key (an authenticated peer): {opened} requests opened, {traced} carry a traceparent");
}
