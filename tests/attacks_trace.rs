//! Trace context from peers, with node identities, on every transport:
//! (a) a peer that is not authenticated gets no span at all, so its
//! context is never taken; (b) a minion marked `untrusted_context` cannot
//! make the master's SERVER span a child of its own span: the span starts
//! a new trace with a link to the minion's CLIENT span, while a trusted
//! minion's SERVER span is a child of its CLIENT span.
#![cfg(feature = "otel")]
mod support;

use bytes::Bytes;
use opentelemetry::trace::{SpanId, SpanKind};
use opentelemetry_sdk::trace::SpanData;
use sealrpc::channel::{Client, Router};
use sealrpc::error::WireError;
use sealrpc::job;
use sealrpc::telemetry::memory::{collecting, render_trees};
use sealrpc::Error;
use support::attack::{base_config, listen_url, Counter, Pki, T};
use support::cluster;
use support::spans::{attr, of};

/// The CLIENT span of minion `id`'s return: a child of its CONSUMER span.
fn return_client<'a>(spans: &'a [SpanData], id: &str, trees: &str) -> &'a SpanData {
    let consumer = spans
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Consumer
                && attr(s, "messaging.client.id").as_deref() == Some(id)
        })
        .unwrap_or_else(|| panic!("no CONSUMER span on {id}:\n{trees}"));
    let out = of(spans, job::RETURN, SpanKind::Client);
    let out: Vec<_> = out
        .into_iter()
        .filter(|c| c.parent_span_id == consumer.span_context.span_id())
        .collect();
    assert_eq!(out.len(), 1, "{id}:\n{trees}");
    out[0]
}

async fn untrusted_context_is_a_link_not_a_parent(scheme: &str) {
    let pki = Pki::new("trace");
    let (telemetry, collector) = collecting("attacks");
    let count = Counter::default();
    let cfg = base_config().with_telemetry(Some(telemetry.clone()));
    let router = count.route(Router::new(), "count.me");
    let opts = pki.options(true, &["m2"]);
    let mut c = cluster::master_with(&[&listen_url(scheme)], router, cfg.clone(), opts).await;
    let url = c.url(scheme);
    let fp = pki.master_fingerprint();

    // (a) A peer without an identity, tracing on: refused, and no span
    // of the master's carries its trace.
    let plain = base_config().with_telemetry(Some(telemetry.clone()));
    let err = match Client::connect(&url, plain).await {
        Err(e) => e,
        Ok(client) => client
            .call("count.me", Bytes::new())
            .await
            .expect_err("refused"),
    };
    assert!(
        matches!(err, Error::Wire(WireError::PeerAlert(3))),
        "{err:?}"
    );
    assert_eq!(count.get(), 0);

    for id in ["m1", "m2"] {
        let m = pki.minion(id);
        let mut mcfg = m.config(Some(fp.clone()));
        mcfg.telemetry = Some(telemetry.clone());
        let router = sealrpc::builtin::register(Router::new());
        c.minion(&url, id, router, mcfg).await;
    }
    let report = c.handle.publish("*", "test.ping", Bytes::new(), T).await;
    assert!(report.expect("publish").all_ok());
    c.stop().await;

    let spans = collector.spans();
    let trees = render_trees(&spans);
    // (a) The refused call: its CLIENT span exists, nothing else in its trace.
    let refused = of(&spans, "count.me", SpanKind::Client);
    assert_eq!(refused.len(), 1, "{trees}");
    let trace = refused[0].span_context.trace_id();
    let in_trace = spans.iter().filter(|s| s.span_context.trace_id() == trace);
    assert_eq!(in_trace.count(), 1, "{trees}");
    assert!(
        of(&spans, "count.me", SpanKind::Server).is_empty(),
        "{trees}"
    );

    // (b) m1 (trusted): the SERVER span of its return is its CLIENT span's child.
    let servers = of(&spans, job::RETURN, SpanKind::Server);
    let m1 = return_client(&spans, "m1", &trees);
    let child: Vec<_> = servers
        .iter()
        .filter(|s| s.parent_span_id == m1.span_context.span_id())
        .collect();
    assert_eq!(child.len(), 1, "{trees}");
    assert_eq!(child[0].span_context.trace_id(), m1.span_context.trace_id());
    // m2 (untrusted): no SERVER span is its child; one has no parent, its
    // own trace, and a link to m2's CLIENT span.
    let m2 = return_client(&spans, "m2", &trees);
    assert!(
        !servers
            .iter()
            .any(|s| s.parent_span_id == m2.span_context.span_id()),
        "{trees}"
    );
    let linked: Vec<_> = servers
        .iter()
        .filter(|s| {
            s.links
                .iter()
                .any(|l| l.span_context.span_id() == m2.span_context.span_id())
        })
        .collect();
    assert_eq!(linked.len(), 1, "{trees}");
    let s = linked[0];
    assert_eq!(s.parent_span_id, SpanId::INVALID, "{trees}");
    assert_ne!(s.span_context.trace_id(), m2.span_context.trace_id());
    let links: Vec<_> = s
        .links
        .iter()
        .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
        .collect();
    let want = (m2.span_context.trace_id(), m2.span_context.span_id());
    assert_eq!(links, [want], "{trees}");
}

macro_rules! per_transport {
    ($($scheme:ident),*) => {$(
        mod $scheme {
            #[tokio::test]
            async fn untrusted_context_is_a_link_not_a_parent() {
                super::untrusted_context_is_a_link_not_a_parent(stringify!($scheme)).await
            }
        }
    )*};
}

per_transport!(tcp, ws, zmq);
