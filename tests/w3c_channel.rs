//! The 83 W3C Trace Context cases, end to end through the channel: each
//! case's header pairs become the trace carrier of a real sealed request
//! sent over TCP, and the server span the master records is checked
//! against the case's expectation (accepted: same trace id, parent = the
//! sent parent id, a new span id; restarted/generated: a fresh root trace;
//! tracestate inherited / keys absent / discarded).
#![cfg(feature = "otel")]
mod support;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData};
use sealrpc::channel::{ChannelConfig, HandlerError, Router};
use sealrpc::keys::Key;
use sealrpc::telemetry::memory::MemoryCollector;
use sealrpc::telemetry::Telemetry;
use sealrpc::wire::envelope::unix_ms;
use sealrpc::wire::load::{self, Carrier, RequestLoad};
use sealrpc::wire::{Kind, Sealer};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/w3c-trace-context-cases.json"
    );
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read cases")).expect("json");
    data["cases"].as_array().expect("cases").clone()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn w3c_cases_through_a_sealed_tcp_hop() {
    let cases = cases();
    assert_eq!(cases.len(), 83);
    let collector = MemoryCollector::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collector.clone())
        .with_sampler(Sampler::AlwaysOn)
        .build();
    let telemetry = Telemetry::from_provider(provider);
    let key = Key::generate();
    let mut router = Router::new();
    for i in 0..cases.len() {
        router = router.route(&format!("case.{i}"), |_r| async {
            Ok::<_, HandlerError>(bytes::Bytes::new())
        });
    }
    let cfg = ChannelConfig::new(key.clone()).with_telemetry(Some(telemetry));
    let server = support::start(router, cfg).await;

    // A hand-driven client: seal each case's carrier into a request load.
    let (mut reader, mut writer) = sealrpc_tcp::connect(server.addr, Default::default())
        .await
        .expect("connect");
    let mut sealer = Sealer::new(key, [9; 16]);
    for (i, case) in cases.iter().enumerate() {
        let pairs: Vec<(String, String)> = case["input"]
            .as_array()
            .expect("input")
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap_or_default().to_owned(),
                    p[1].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let method = format!("case.{i}");
        let req = RequestLoad {
            retry: &[],
            id: i as u64,
            method: &method,
            body: b"",
            deadline_ms: 0,
            trace: Carrier(
                pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
        };
        writer
            .push_with(|b| {
                sealer
                    .seal(Kind::Request, unix_ms(), 1 << 20, b, |b| {
                        load::encode(&req, b)
                    })
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .map_err(sealrpc_tcp::FrameError::Io)
            })
            .expect("seal");
        writer.flush().await.expect("send");
        let reply = reader.recv().await.expect("recv").expect("a reply frame");
        assert!(reply.len() > 56, "case {i}: got a sealed reply");
    }
    drop(writer);
    server.stop().await;

    let spans = collector.spans();
    let mut checked = 0;
    for (i, case) in cases.iter().enumerate() {
        let name = format!("case.{i}");
        let server_spans: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.name == name && s.span_kind == SpanKind::Server)
            .collect();
        assert_eq!(server_spans.len(), 1, "case {i} {}", case["name"]);
        check(i, case, server_spans[0]);
        checked += 1;
    }
    assert_eq!(checked, 83);
    // Exactly the keys the current W3C grammar allows and opentelemetry 0.33
    // does not; if either side changes, this list must be revisited.
    let dropped = DROPPED.with(|d| d.borrow().clone());
    let long = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let expected = [
        "foo@@bar".to_owned(),
        "foo@bar@baz".to_owned(),
        long,
        "t@vvvvvvvvvvvvvvv".to_owned(),
    ];
    assert_eq!(dropped, expected, "tracestate keys dropped at the span");
}

thread_local! {
    static DROPPED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn otel_rejects_key(k: &str) -> bool {
    opentelemetry::trace::TraceState::from_key_value([(k, "1")]).is_err()
}

fn check(i: usize, case: &Value, s: &SpanData) {
    let label = format!("case {i} {} {}", case["name"], case["input"]);
    let tp = &case["expect"]["traceparent"];
    let trace_id = s.span_context.trace_id().to_string();
    let parent = s.parent_span_id;
    match tp["outcome"].as_str() {
        Some("accepted") => {
            assert_eq!(
                trace_id,
                tp["trace_id"].as_str().unwrap_or_default(),
                "{label}"
            );
            let sent = case["input"]
                .as_array()
                .and_then(|a| {
                    a.iter().find(|p| {
                        p[0].as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case("traceparent"))
                    })
                })
                .and_then(|p| p[1].as_str())
                .map(|v| {
                    v.trim_matches([' ', '\t'])
                        .split('-')
                        .nth(2)
                        .unwrap_or_default()
                        .to_owned()
                })
                .unwrap_or_default();
            assert_eq!(
                parent.to_string(),
                sent,
                "{label}: parent = the sent parent id"
            );
            assert!(s.parent_span_is_remote, "{label}");
            if let Some(not) = tp["parent_id_not"].as_str() {
                assert_ne!(
                    s.span_context.span_id().to_string(),
                    not,
                    "{label}: a new span id"
                );
            }
        }
        Some("restarted") | Some("generated") => {
            assert_eq!(
                parent,
                opentelemetry::trace::SpanId::INVALID,
                "{label}: a new root"
            );
            for not in strs(&tp["trace_id_not"]) {
                assert_ne!(trace_id, not, "{label}: a new trace id");
            }
        }
        Some("unchecked") => {}
        other => panic!("{label}: unknown outcome {other:?}"),
    }
    let ts = &case["expect"]["tracestate"];
    let state = s.span_context.trace_state();
    match ts["outcome"].as_str() {
        None => {}
        Some("inherited") => {
            for k in strs(&ts["has_keys"]) {
                let want = ts["values"][&k].as_str();
                if otel_rejects_key(&k) {
                    // Documented limit of opentelemetry 0.33 (README): such a
                    // member is dropped at the span, the rest is kept.
                    assert_eq!(state.get(&k), None, "{label}: key {k}");
                    DROPPED.with(|d| d.borrow_mut().push(k.clone()));
                    continue;
                }
                assert_eq!(state.get(&k), want, "{label}: key {k}");
            }
            if let Some(n) = ts["length"].as_u64() {
                assert_eq!(state.header().split(',').count() as u64, n, "{label}");
            }
        }
        Some("keys_absent") => {
            for k in strs(&ts["absent_keys"]) {
                assert_eq!(state.get(&k), None, "{label}: key {k} must be absent");
            }
        }
        Some("empty_discarded") | Some("discarded_same_as_other_case") => {
            assert_eq!(state.header(), "", "{label}");
        }
        other => panic!("{label}: unknown tracestate outcome {other:?}"),
    }
}
