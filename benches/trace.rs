//! Trace context inject (client) and extract (server), as the channel does
//! them for each traced call. Needs the `otel` feature (on by default).
//!
//! Inject: the client turns its CLIENT span's context into the load's carrier
//! with `channel::publish::TraceCarrier` and `SpanHandle::w3c`, both
//! crate-private. `trace/inject_carrier/*` runs the same steps through public
//! APIs: the span context of a live SDK CLIENT span (a child of a remote
//! parent, so it inherits the `tracestate`), `context::TraceParent::header`
//! (on the stack), opentelemetry's `TraceState::header`, then the borrowed
//! `Carrier` view the client encodes. `trace/format_traceparent` is
//! `TraceParent::header` alone.
//!
//! Extract: the server calls `sealrpc::context::extract` (public) on the
//! carrier it decoded, benched as is (`trace/extract/*`);
//! `trace/parse_traceparent` is `TraceParent::parse` alone. The server then
//! converts the result into an OpenTelemetry parent (`remote_parent`,
//! crate-private) and starts its SERVER span. The closest public API running
//! that conversion is `Telemetry::root_context(name, Some(&remote))`, which
//! also starts (and, when dropped, ends) a span: `trace/root_span/remote_parent`;
//! `trace/root_span/new_trace` is the same without a parent, so the
//! difference is about the conversion. Spans go to the SDK's batch
//! processor with 100% sampling and an exporter that discards them.
//!
//! `taskset -c 0 cargo bench --bench trace`
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::trace::{
    SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceState, Tracer,
};
use opentelemetry::Context;
use sealrpc::context::{self, Extracted, HeaderValue, TraceParent};
use sealrpc::telemetry::Telemetry;
use sealrpc::wire::load::Carrier;
use std::hint::black_box;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn telemetry() -> Telemetry {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .build();
    Telemetry::from_provider(provider)
}

/// A started CLIENT span, current in the returned context (as the channel's
/// `Telemetry::client_span` builds it), under `parent`.
fn client_span(t: &Telemetry, parent: Context) -> Context {
    let span = t
        .tracer()
        .span_builder("bench.echo")
        .with_kind(SpanKind::Client)
        .start_with_context(t.tracer(), &parent);
    parent.with_span(span)
}

/// `TraceCarrier::of(Some(span))` with `SpanHandle::w3c`, step for step:
/// the formatted `traceparent` and the `tracestate` header.
fn trace_carrier(cx: &Context) -> Option<(HeaderValue, String)> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let parent = TraceParent {
        trace_id: context::TraceId(sc.trace_id().to_bytes()),
        parent_id: context::SpanId(sc.span_id().to_bytes()),
        flags: sc.trace_flags().to_u8(),
    };
    Some((parent.header(), sc.trace_state().header()))
}

/// `TraceCarrier::pairs`: the borrowed view the client encodes.
fn pairs<'a>(trace: &'a Option<(HeaderValue, String)>) -> Carrier<'a> {
    let Some((parent, state)) = trace else {
        return Carrier::default();
    };
    let mut pairs = Vec::with_capacity(1 + usize::from(!state.is_empty()));
    pairs.push((context::TRACEPARENT, parent.as_str()));
    if !state.is_empty() {
        pairs.push((context::TRACESTATE, state.as_str()));
    }
    Carrier(pairs)
}

fn trace(c: &mut Criterion) {
    let t = telemetry();
    let remote = TraceParent::parse(TRACEPARENT).expect("traceparent");
    let remote_sc = |state: TraceState| {
        SpanContext::new(
            opentelemetry::TraceId::from_bytes(remote.trace_id.0),
            opentelemetry::SpanId::from_bytes(remote.parent_id.0),
            TraceFlags::SAMPLED,
            true,
            state,
        )
    };
    let state: TraceState = TRACESTATE.parse().expect("tracestate");
    let with_state = client_span(
        &t,
        Context::new().with_remote_span_context(remote_sc(state)),
    );
    let without_state = client_span(
        &t,
        Context::new().with_remote_span_context(remote_sc(TraceState::default())),
    );
    assert_eq!(pairs(&trace_carrier(&with_state)).0.len(), 2);
    assert_eq!(pairs(&trace_carrier(&without_state)).0.len(), 1);

    let mut g = c.benchmark_group("trace");
    for (name, cx) in [
        ("traceparent_tracestate", &with_state),
        ("traceparent", &without_state),
    ] {
        g.bench_function(format!("inject_carrier/{name}"), |b| {
            b.iter(|| {
                let trace = trace_carrier(black_box(cx));
                black_box(pairs(&trace).0.len());
            })
        });
    }
    g.bench_function("format_traceparent", |b| {
        b.iter(|| black_box(black_box(&remote).header()))
    });

    let full: Vec<(&str, &str)> = vec![("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)];
    let parent_only: Vec<(&str, &str)> = vec![("traceparent", TRACEPARENT)];
    for (name, carrier) in [
        ("traceparent_tracestate", &full),
        ("traceparent", &parent_only),
    ] {
        g.bench_function(format!("extract/{name}"), |b| {
            b.iter(|| black_box(context::extract(black_box(carrier))))
        });
    }
    g.bench_function("parse_traceparent", |b| {
        b.iter(|| black_box(TraceParent::parse(black_box(TRACEPARENT))))
    });

    let Extracted::Valid(remote_cx) = context::extract(&full) else {
        panic!("the carrier is valid");
    };
    g.bench_function("root_span/remote_parent", |b| {
        b.iter(|| black_box(t.root_context("bench.echo", Some(black_box(&remote_cx)))))
    });
    g.bench_function("root_span/new_trace", |b| {
        b.iter(|| black_box(t.root_context("bench.echo", None)))
    });
    g.finish();
    with_state.span().end();
    without_state.span().end();
    let _ = t.provider().shutdown();
}

criterion_group!(benches, trace);
criterion_main!(benches);
