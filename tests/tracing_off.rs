//! Tracing off (the default): no provider, no exporter thread, and not one
//! byte of trace data in any load. Its own test binary, so nothing else in
//! the process can have installed a provider.
mod support;

#[cfg(feature = "otel")]
use opentelemetry::trace::{Span, Tracer};
use sealrpc::channel::{ChannelConfig, Client};
use sealrpc::keys::Key;
use sealrpc::tap::Tap;
use sealrpc::telemetry::config::{resolve, Role, TracingSettings};
use sealrpc::wire::{load, RequestLoad};

fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .flatten()
    {
        if let Ok(n) = std::fs::read_to_string(entry.path().join("comm")) {
            names.push(n.trim().to_owned());
        }
    }
    names
}

#[tokio::test]
async fn default_config_means_no_provider_no_thread_no_trace_bytes() {
    // No settings anywhere: tracing resolves to off.
    let none = TracingSettings::default();
    let env = TracingSettings::from_env(|_| None).expect("empty env");
    assert_eq!(
        resolve(Role::Cli, &none, &env, &none).expect("resolve"),
        None
    );

    let key = Key::generate();
    let cfg = ChannelConfig::new(key.clone());
    assert!(cfg.telemetry.is_none());
    let server = support::start(support::builtins(), cfg.clone()).await;
    let tap = Tap::start(server.addr).await.expect("tap");
    let client = Client::connect(&format!("tcp://{}", tap.addr()), cfg)
        .await
        .expect("connect");
    for _ in 0..3 {
        client
            .call("test.ping", bytes::Bytes::new())
            .await
            .expect("ping");
    }
    drop(client);
    server.stop().await;

    let opened = support::open_captured_requests(&key, &tap.to_server());
    assert_eq!(opened.len(), 3);
    for (envelope_len, plain) in opened {
        let req: RequestLoad = load::decode(&plain).expect("decode");
        assert!(req.trace.0.is_empty(), "no trace field");
        assert_eq!(
            plain[0], 0x94,
            "the load is a 4-element array: no trace element at all"
        );
        // Header + load + tag and nothing else.
        assert_eq!(envelope_len, 40 + plain.len() + 16);
    }

    // The global provider is still the no-op one: its spans are invalid.
    #[cfg(feature = "otel")]
    {
        let span = opentelemetry::global::tracer("probe").start("probe");
        assert!(
            !span.span_context().is_valid(),
            "a tracer provider was installed"
        );
        assert!(!span.is_recording());
    }
    let names = thread_names();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("OpenTelemetry") || n.contains("BatchSpan") || n.contains("Batch")),
        "an exporter thread is running: {names:?}"
    );
}
