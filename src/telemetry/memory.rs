//! An in-process collector: a span exporter that keeps finished spans in
//! memory, and a renderer that prints them as trees. Used by `sealrpc demo`.
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Collects every exported span.
#[derive(Clone, Debug, Default)]
pub struct MemoryCollector {
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl MemoryCollector {
    /// The spans collected so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SpanExporter for MemoryCollector {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch);
        Ok(())
    }
}

fn kind(k: &SpanKind) -> &'static str {
    match k {
        SpanKind::Client => "CLIENT",
        SpanKind::Server => "SERVER",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

/// Renders spans as one tree per trace (in order of each trace's first
/// span): name, kind, duration, the minion of a CONSUMER span, status.
pub fn render_trees(spans: &[SpanData]) -> String {
    let mut by_trace: BTreeMap<String, Vec<&SpanData>> = BTreeMap::new();
    for s in spans {
        by_trace
            .entry(s.span_context.trace_id().to_string())
            .or_default()
            .push(s);
    }
    let mut traces: Vec<(String, Vec<&SpanData>)> = by_trace.into_iter().collect();
    for (_, list) in &mut traces {
        list.sort_by_key(|s| s.start_time);
    }
    traces.sort_by_key(|(_, list)| list.first().map(|s| s.start_time));
    let mut out = String::new();
    for (trace, list) in traces {
        let _ = writeln!(out, "trace {trace}");
        let ids: Vec<SpanId> = list.iter().map(|s| s.span_context.span_id()).collect();
        for root in list.iter().filter(|s| !ids.contains(&s.parent_span_id)) {
            draw(&mut out, root, &list, 1);
        }
    }
    out
}

fn draw(out: &mut String, span: &SpanData, all: &[&SpanData], depth: usize) {
    let ms = span
        .end_time
        .duration_since(span.start_time)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0);
    let status = match &span.status {
        Status::Error { description } => format!("  ERROR: {description}"),
        _ => String::new(),
    };
    let minion = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "messaging.client.id")
        .map(|kv| format!(" on {}", kv.value))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}{} [{}]{minion} {:.3} ms  span {}{}",
        "  ".repeat(depth),
        span.name,
        kind(&span.span_kind),
        ms,
        span.span_context.span_id(),
        status
    );
    for child in all
        .iter()
        .filter(|c| c.parent_span_id == span.span_context.span_id())
    {
        draw(out, child, all, depth + 1);
    }
}

/// A telemetry handle exporting synchronously into a fresh
/// [`MemoryCollector`], with `service.name` = `service`.
pub fn collecting(service: &str) -> (super::Telemetry, MemoryCollector) {
    let collector = MemoryCollector::default();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(collector.clone())
        .with_resource(resource)
        .build();
    (super::Telemetry::from_provider(provider), collector)
}
