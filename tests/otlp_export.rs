//! Real OTLP export: a call's client and server spans reach an OTLP
//! receiver nobody on this team wrote — the fake-opentelemetry-collector
//! crate's gRPC service — with the parent link intact; the OTLP/HTTP
//! exporter path is exercised against a minimal HTTP endpoint whose bodies
//! are decoded with opentelemetry-proto's generated protobuf types.
#![cfg(feature = "otel")]
mod support;

use fake_opentelemetry_collector::FakeCollectorServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use sealrpc::channel::{ChannelConfig, Client};
use sealrpc::keys::Key;
use sealrpc::telemetry::config::{resolve, ExporterKind, Role, TracingSettings};
use sealrpc::telemetry::Telemetry;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn settings(exporter: ExporterKind, endpoint: String) -> TracingSettings {
    TracingSettings {
        exporter: Some(exporter),
        endpoint: Some(endpoint),
        sampler: Some("always_on".into()),
        ..Default::default()
    }
}

async fn one_call(telemetry: Telemetry) {
    let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry.clone()));
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    client
        .call("test.ping", bytes::Bytes::new())
        .await
        .expect("ping");
    drop(client);
    server.stop().await;
    telemetry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_reaches_a_real_otlp_collector_with_parent_links() {
    let mut collector = FakeCollectorServer::start().await.expect("collector");
    let none = TracingSettings::default();
    let cfg = resolve(
        Role::Master,
        &none,
        &none,
        &settings(ExporterKind::OtlpGrpc, collector.endpoint()),
    )
    .expect("resolve")
    .expect("tracing on");
    one_call(Telemetry::init(&cfg).expect("init")).await;
    let spans = collector.exported_spans(2, Duration::from_secs(20)).await;
    let client = spans
        .iter()
        .find(|s| s.kind == "SPAN_KIND_CLIENT")
        .expect("client span exported");
    let server = spans
        .iter()
        .find(|s| s.kind == "SPAN_KIND_SERVER")
        .expect("server span exported");
    assert_eq!(client.name, "test.ping");
    assert_eq!(server.trace_id, client.trace_id);
    assert_eq!(server.parent_span_id, client.span_id);
    // The fake collector renders attribute values with Debug formatting.
    let system = server.attributes.get("rpc.system").expect("rpc.system");
    assert!(system.contains("StringValue(\"sealrpc\")"), "{system}");
}

/// Accepts OTLP/HTTP posts and forwards each decoded request.
async fn http_receiver(tx: mpsc::UnboundedSender<(String, ExportTraceServiceRequest)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = find(&buf, b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                    let req = ExportTraceServiceRequest::decode(&body[..]).expect("protobuf body");
                    let _ = tx.send((head, req));
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if sock.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/v1/traces")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_posts_both_spans() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let endpoint = http_receiver(tx).await;
    let none = TracingSettings::default();
    let mut cli = settings(ExporterKind::OtlpHttp, endpoint);
    cli.headers = Some([("x-tenant".to_owned(), "demo".to_owned())].into());
    let cfg = resolve(Role::Master, &none, &none, &cli)
        .expect("resolve")
        .expect("on");
    one_call(Telemetry::init(&cfg).expect("init")).await;
    let mut spans = Vec::new();
    let mut heads = Vec::new();
    while spans.len() < 2 {
        let (head, req) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("export arrived")
            .expect("open");
        heads.push(head);
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("post /v1/traces"), "{head}");
    assert!(
        head.contains("content-type: application/x-protobuf"),
        "{head}"
    );
    assert!(
        head.contains("x-tenant: demo"),
        "configured header sent: {head}"
    );
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .expect("client");
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("server");
    assert_eq!(server.trace_id, client.trace_id);
    assert_eq!(server.parent_span_id, client.span_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_never_fails_or_blocks_a_call() {
    // A port nothing listens on: bind, note the port, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let none = TracingSettings::default();
    let mut cli = settings(
        ExporterKind::OtlpHttp,
        format!("http://127.0.0.1:{port}/v1/traces"),
    );
    cli.timeout_ms = Some(200);
    let cfg = resolve(Role::Master, &none, &none, &cli)
        .expect("resolve")
        .expect("on");
    let telemetry = Telemetry::init(&cfg).expect("init");
    let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry.clone()));
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    for _ in 0..50 {
        client
            .call("test.ping", bytes::Bytes::new())
            .await
            .expect("call succeeds although export fails");
    }
    drop(client);
    server.stop().await;
    telemetry.shutdown().await;
}
