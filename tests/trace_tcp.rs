//! Trace propagation across a real TCP hop, with an in-process collector.
#![cfg(feature = "otel")]
mod support;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry_sdk::trace::SpanData;
use sealrpc::channel::{ChannelConfig, Client, HandlerError};
use sealrpc::keys::Key;
use sealrpc::tap::{contains, split_frames, Tap};
use sealrpc::telemetry::memory::collecting;
use sealrpc::wire::{load, RequestLoad};
use tracing_subscriber::layer::SubscriberExt;

fn find<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {kind:?} span named {name}: {spans:#?}"
    );
    found[0]
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn server_span_is_child_of_client_span_across_tcp() {
    let (telemetry, collector) = collecting("test");
    let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry));
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let port = server.addr.port();
    client
        .call("test.ping", bytes::Bytes::new())
        .await
        .expect("ping");
    let err = client
        .call("test.fail", bytes::Bytes::new())
        .await
        .expect_err("fail");
    assert!(
        matches!(err, sealrpc::Error::Remote(ref m) if m.contains("failing as asked")),
        "{err}"
    );
    drop(client);
    server.stop().await;
    let spans = collector.spans();

    let c = find(&spans, "test.ping", SpanKind::Client);
    let s = find(&spans, "test.ping", SpanKind::Server);
    assert_eq!(
        c.span_context.trace_id(),
        s.span_context.trace_id(),
        "one trace id"
    );
    assert_eq!(
        s.parent_span_id,
        c.span_context.span_id(),
        "server parent = client span"
    );
    assert_ne!(s.span_context.span_id(), c.span_context.span_id());
    assert!(
        s.parent_span_is_remote,
        "the server's parent came over the wire"
    );
    assert_eq!(attr(s, "rpc.system").as_deref(), Some("sealrpc"));
    assert_eq!(attr(c, "rpc.method").as_deref(), Some("test.ping"));
    assert_eq!(attr(c, "server.port"), Some(port.to_string()));
    assert!(attr(s, "client.address").is_some());
    assert_eq!(s.status, Status::Unset);

    let fc = find(&spans, "test.fail", SpanKind::Client);
    let fs = find(&spans, "test.fail", SpanKind::Server);
    assert_eq!(fs.parent_span_id, fc.span_context.span_id());
    assert!(
        matches!(&fs.status, Status::Error { description } if description.contains("failing as asked"))
    );
    assert!(matches!(fc.status, Status::Error { .. }));
    assert!(
        fs.events.iter().any(|e| e.name == "exception"),
        "error recorded as an event"
    );
    assert_eq!(attr(fs, "error.type").as_deref(), Some("handler_error"));
    assert_ne!(
        fc.span_context.trace_id(),
        c.span_context.trace_id(),
        "separate calls, separate traces"
    );
}

#[tokio::test]
async fn wire_capture_holds_no_trace_data_but_the_opened_load_does() {
    let (telemetry, collector) = collecting("test");
    let key = Key::generate();
    let cfg = ChannelConfig::new(key.clone()).with_telemetry(Some(telemetry));
    let server = support::start(support::builtins(), cfg.clone()).await;
    let tap = Tap::start(server.addr).await.expect("tap");
    let client = Client::connect(&format!("tcp://{}", tap.addr()), cfg)
        .await
        .expect("connect");
    for _ in 0..5 {
        client
            .call(
                "test.echo",
                sealrpc::builtin::args_body(&["x"]).expect("body"),
            )
            .await
            .expect("echo");
    }
    drop(client);
    server.stop().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 10);
    let (up, down) = (tap.to_server(), tap.to_client());
    // The server's going-away alert (5 bytes, no trace data) follows the
    // replies if it stopped before it saw the client close.
    let going_away = [0x53, 0x52, 0x01, 0x7f, 4];
    let frames: Vec<Vec<u8>> = split_frames(&up)
        .into_iter()
        .chain(
            split_frames(&down)
                .into_iter()
                .filter(|f| f[..] != going_away),
        )
        .collect();
    assert_eq!(frames.len(), 10, "5 requests and 5 replies captured");
    for span in &spans {
        let id = span.span_context.trace_id();
        for f in &frames {
            assert!(!contains(f, &id.to_bytes()), "raw trace id on the wire");
            assert!(
                !contains(f, id.to_string().as_bytes()),
                "hex trace id on the wire"
            );
            assert!(
                !contains(f, &span.span_context.span_id().to_bytes()),
                "raw span id on the wire"
            );
        }
    }
    assert!(!frames.iter().any(|f| contains(f, b"traceparent")));
    // An authenticated peer (holding the key) does see the context.
    let client_spans: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    for (_, plain) in support::open_captured_requests(&key, &up) {
        let req: RequestLoad = load::decode(&plain).expect("decode");
        let (name, tp) = req.trace.0[0];
        assert_eq!(name, "traceparent");
        let tp = sealrpc::context::TraceParent::parse(tp).expect("valid traceparent");
        assert!(
            client_spans
                .iter()
                .any(|c| c.span_context.span_id().to_bytes() == tp.parent_id.0
                    && c.span_context.trace_id().to_bytes() == tp.trace_id.0),
            "the load's traceparent names the client span"
        );
    }
}

/// Handler code that opens spans — with the OpenTelemetry API, or with the
/// `tracing` crate through tracing-opentelemetry — nests under the server span.
#[tokio::test(flavor = "current_thread")]
async fn handler_spans_nest_under_the_server_span() {
    let (telemetry, collector) = collecting("test");
    let otel_tracer = telemetry.tracer().clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(telemetry.tracer().clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let router = sealrpc::channel::Router::new().route("work", move |_req| {
        let tracer = otel_tracer.clone();
        async move {
            tracer.in_span("handler.otel", |cx| {
                assert!(cx.span().span_context().is_valid())
            });
            let span = tracing::info_span!("handler.tracing");
            let _e = span.enter();
            Ok::<_, HandlerError>(bytes::Bytes::from_static(b"\xc3"))
        }
    });
    let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry));
    let server = support::start(router, cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    client
        .call("work", bytes::Bytes::new())
        .await
        .expect("work");
    drop(client);
    server.stop().await;
    let spans = collector.spans();
    let s = find(&spans, "work", SpanKind::Server);
    for name in ["handler.otel", "handler.tracing"] {
        let h = find(&spans, name, SpanKind::Internal);
        assert_eq!(
            h.parent_span_id,
            s.span_context.span_id(),
            "{name} is a child of the server span"
        );
        assert_eq!(h.span_context.trace_id(), s.span_context.trace_id());
    }
}

#[tokio::test]
async fn cli_root_span_parents_the_call_and_can_continue_a_traceparent() {
    let (telemetry, collector) = collecting("test");
    let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry.clone()));
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let remote = match sealrpc::context::extract(&[(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )]) {
        sealrpc::context::Extracted::Valid(r) => r,
        other => panic!("{other:?}"),
    };
    telemetry
        .in_root(
            "sealrpc call test.ping",
            Some(&remote),
            client.call("test.ping", bytes::Bytes::new()),
        )
        .await
        .expect("ping");
    drop(client);
    server.stop().await;
    let spans = collector.spans();
    let root = find(&spans, "sealrpc call test.ping", SpanKind::Internal);
    let c = find(&spans, "test.ping", SpanKind::Client);
    let s = find(&spans, "test.ping", SpanKind::Server);
    assert_eq!(
        root.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(root.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(c.parent_span_id, root.span_context.span_id());
    assert_eq!(s.parent_span_id, c.span_context.span_id());
    assert_eq!(s.span_context.trace_id(), root.span_context.trace_id());
}
