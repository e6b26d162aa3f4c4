//! One trace per job, across all three transports: CLI root → CLIENT and
//! master SERVER for the publish request → PRODUCER → one CONSUMER per
//! minion → the minion's CLIENT for its return → the master's SERVER for
//! that return. Every span shares the trace id and every parent was
//! exported. In link mode the CONSUMER starts a new trace linked to the
//! PRODUCER.
#![cfg(feature = "otel")]
mod support;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use sealrpc::channel::{ChannelConfig, Client, Router};
use sealrpc::job::{self, JobReport, PublishRequest};
use sealrpc::keys::Key;
use sealrpc::minion::MinionOptions;
use sealrpc::tap::{contains, Tap};
use sealrpc::telemetry::memory::{collecting, render_trees};
use sealrpc::telemetry::ConsumerMode;
use serde_bytes::ByteBuf;
use std::collections::HashSet;
use support::cluster;
use support::spans::{attr, of};

fn parent_of<'a>(spans: &'a [SpanData], child: &SpanData) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.span_context.span_id() == child.parent_span_id)
        .unwrap_or_else(|| panic!("parent of {} not exported", child.name))
}

const IDS: [&str; 3] = ["tcp-m", "ws-m", "zmq-m"];

/// Runs one job published through the master's `sealrpc.publish` method
/// from a CLI-like root span, with minions on all three transports, and
/// returns every span the job (and the registrations) produced.
async fn run_job(mode: ConsumerMode) -> Vec<SpanData> {
    run_job_tapped(mode).await.0
}

/// As [`run_job`], with a fourth minion (`tapped`) reaching the master's
/// TCP listener through a recording relay; also returns what the relay saw
/// in each direction.
async fn run_job_tapped(mode: ConsumerMode) -> (Vec<SpanData>, Vec<u8>, Vec<u8>) {
    let (telemetry, collector) = collecting("test");
    let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry.clone()));
    let urls = [
        "tcp://127.0.0.1:0",
        "ws://127.0.0.1:0/j",
        "zmq://127.0.0.1:0",
    ];
    let mut c = cluster::master(&urls, Router::new(), cfg.clone()).await;
    for (id, scheme) in IDS.iter().zip(["tcp", "ws", "zmq"]) {
        let url = c.url(scheme);
        let opts = MinionOptions {
            consumer: mode,
            ..Default::default()
        };
        let router = sealrpc::builtin::register(Router::new());
        c.minion_with(&url, id, router, cfg.clone(), opts).await;
    }
    let tcp: std::net::SocketAddr = c.url("tcp")[6..].parse().expect("addr");
    let tap = Tap::start(tcp).await.expect("tap");
    let router = sealrpc::builtin::register(Router::new());
    let tapped = format!("tcp://{}", tap.addr());
    let opts = MinionOptions {
        consumer: mode,
        ..Default::default()
    };
    c.minion_with(&tapped, "tapped", router, cfg.clone(), opts)
        .await;
    let client = Client::connect(&c.url("tcp"), cfg.clone())
        .await
        .expect("connect");
    let request = PublishRequest {
        target: "*".into(),
        method: "test.ping".into(),
        body: ByteBuf::new(),
        timeout_ms: 10_000,
    };
    let report: JobReport = telemetry
        .in_root("sealrpc publish test.ping", None, async {
            client.call_value(job::PUBLISH, &request).await
        })
        .await
        .expect("publish");
    assert!(report.all_ok(), "{report:?}");
    drop(client);
    c.stop().await;
    (collector.spans(), tap.to_client(), tap.to_server())
}

#[tokio::test]
async fn one_trace_per_job_on_every_transport() {
    let spans = run_job(ConsumerMode::Child).await;
    let trees = render_trees(&spans);
    let root = of(&spans, "sealrpc publish test.ping", SpanKind::Internal);
    assert_eq!(root.len(), 1, "{trees}");
    let trace = root[0].span_context.trace_id();
    let job: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    // Outside the job's trace: only the minions' registrations.
    for s in spans.iter().filter(|s| s.span_context.trace_id() != trace) {
        assert!(
            [job::HELLO, job::READY].contains(&s.name.as_ref()),
            "{} is outside the job's trace:\n{trees}",
            s.name
        );
    }
    // Every parent in the job's trace was exported.
    let ids: HashSet<_> = job.iter().map(|s| s.span_context.span_id()).collect();
    for s in &job {
        assert!(
            s.parent_span_id == opentelemetry::trace::SpanId::INVALID
                || ids.contains(&s.parent_span_id),
            "{}: parent not exported\n{trees}",
            s.name
        );
    }
    let client = of(&spans, job::PUBLISH, SpanKind::Client);
    let server = of(&spans, job::PUBLISH, SpanKind::Server);
    assert_eq!((client.len(), server.len()), (1, 1), "{trees}");
    assert_eq!(client[0].parent_span_id, root[0].span_context.span_id());
    assert_eq!(server[0].parent_span_id, client[0].span_context.span_id());
    let producer = of(&spans, "publish test.ping", SpanKind::Producer);
    assert_eq!(producer.len(), 1, "{trees}");
    let producer = producer[0];
    assert_eq!(producer.parent_span_id, server[0].span_context.span_id());
    assert_eq!(
        attr(producer, "messaging.system").as_deref(),
        Some("sealrpc")
    );
    assert_eq!(
        attr(producer, "messaging.operation.type").as_deref(),
        Some("send")
    );
    assert_eq!(
        attr(producer, "messaging.batch.message_count").as_deref(),
        Some("4")
    );
    let jid = attr(producer, "messaging.message.id").expect("jid");

    let consumers = of(&spans, "process test.ping", SpanKind::Consumer);
    let mut minions: Vec<String> = consumers
        .iter()
        .map(|c| attr(c, "messaging.client.id").expect("minion id"))
        .collect();
    minions.sort();
    assert_eq!(minions, ["tapped", "tcp-m", "ws-m", "zmq-m"], "{trees}");
    let returns_out = of(&spans, job::RETURN, SpanKind::Client);
    let returns_in = of(&spans, job::RETURN, SpanKind::Server);
    assert_eq!((returns_out.len(), returns_in.len()), (4, 4), "{trees}");
    for consumer in &consumers {
        assert_eq!(consumer.span_context.trace_id(), trace);
        assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
        assert_eq!(
            attr(consumer, "messaging.operation.type").as_deref(),
            Some("process")
        );
        assert_eq!(attr(consumer, "messaging.message.id"), Some(jid.clone()));
        let out: Vec<_> = returns_out
            .iter()
            .filter(|r| r.parent_span_id == consumer.span_context.span_id())
            .collect();
        assert_eq!(out.len(), 1, "one return per consumer\n{trees}");
        let inbound: Vec<_> = returns_in
            .iter()
            .filter(|r| r.parent_span_id == out[0].span_context.span_id())
            .collect();
        assert_eq!(
            inbound.len(),
            1,
            "the master's SERVER span of the return\n{trees}"
        );
        assert_eq!(
            parent_of(&spans, out[0]).span_context,
            consumer.span_context
        );
    }
}

/// The publish to a minion and its return travel sealed: no trace id (hex
/// or raw) and no `traceparent` appears in either direction on the wire.
#[tokio::test]
async fn publishes_and_returns_carry_no_visible_trace_context() {
    let (spans, down, up) = run_job_tapped(ConsumerMode::Child).await;
    assert!(down.len() > 200 && up.len() > 200, "the relay saw the job");
    for wire in [&down, &up] {
        assert!(!contains(wire, b"traceparent"));
        for s in &spans {
            let id = s.span_context.trace_id();
            assert!(!contains(wire, &id.to_bytes()));
            assert!(!contains(wire, id.to_string().as_bytes()));
        }
    }
}

#[tokio::test]
async fn link_mode_starts_consumer_traces_linked_to_the_producer() {
    let spans = run_job(ConsumerMode::Link).await;
    let trees = render_trees(&spans);
    let producer = of(&spans, "publish test.ping", SpanKind::Producer);
    assert_eq!(producer.len(), 1, "{trees}");
    let consumers = of(&spans, "process test.ping", SpanKind::Consumer);
    assert_eq!(consumers.len(), 4, "{trees}");
    for consumer in consumers {
        assert_eq!(
            consumer.parent_span_id,
            opentelemetry::trace::SpanId::INVALID
        );
        assert_ne!(
            consumer.span_context.trace_id(),
            producer[0].span_context.trace_id()
        );
        let links: Vec<_> = consumer
            .links
            .iter()
            .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
            .collect();
        let p = &producer[0].span_context;
        assert_eq!(links, [(p.trace_id(), p.span_id())], "{trees}");
        // The return stays in the consumer's trace.
        let out: Vec<_> = of(&spans, job::RETURN, SpanKind::Client)
            .into_iter()
            .filter(|r| r.parent_span_id == consumer.span_context.span_id())
            .collect();
        assert_eq!(out.len(), 1, "{trees}");
    }
}
