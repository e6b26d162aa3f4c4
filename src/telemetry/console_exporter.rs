//! A [`SpanExporter`] that prints one human-readable line per span to
//! stderr, for local debugging:
//!
//! ```text
//! [span] rpc.call kind=client trace=4bf9…4736 span=00f0…02b7 parent=- duration=1.234ms status=ok
//! ```
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Prints one line per span to stderr. Write errors are reported as
/// [`OTelSdkError::InternalFailure`]; nothing panics.
#[derive(Debug, Default)]
pub struct ConsoleSpanExporter {
    is_shutdown: AtomicBool,
}

impl ConsoleSpanExporter {
    /// A new console exporter.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Formats one span as a single line (no trailing newline): name, kind,
/// trace id, span id, parent span id (`-` for a root), duration, status.
pub fn format_span(span: &SpanData) -> String {
    let kind = match span.span_kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    let parent = if span.parent_span_id == SpanId::INVALID {
        "-".to_owned()
    } else {
        span.parent_span_id.to_string()
    };
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    let status = match &span.status {
        Status::Unset => "unset".to_owned(),
        Status::Ok => "ok".to_owned(),
        Status::Error { description } if description.is_empty() => "error".to_owned(),
        Status::Error { description } => format!("error({})", description.escape_debug()),
    };
    format!(
        "[span] {} kind={kind} trace={} span={} parent={parent} duration={:.3}ms status={status}",
        span.name.escape_debug(),
        span.span_context.trace_id(),
        span.span_context.span_id(),
        duration.as_secs_f64() * 1000.0,
    )
}

impl SpanExporter for ConsoleSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.is_shutdown.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let mut out = String::new();
        for span in &batch {
            out.push_str(&format_span(span));
            out.push('\n');
        }
        let mut stderr = std::io::stderr().lock();
        stderr
            .write_all(out.as_bytes())
            .and_then(|()| stderr.flush())
            .map_err(|e| OTelSdkError::InternalFailure(format!("writing spans to stderr: {e}")))
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        if self.is_shutdown.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::{Duration, SystemTime};

    fn span(parent: SpanId, status: Status) -> SpanData {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap_or(TraceId::INVALID),
                SpanId::from_hex("00f067aa0ba902b7").unwrap_or(SpanId::INVALID),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: "rpc.call".into(),
            start_time: start,
            end_time: start + Duration::from_micros(1234),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[test]
    fn formats_root_span() {
        assert_eq!(
            format_span(&span(SpanId::INVALID, Status::Ok)),
            "[span] rpc.call kind=client trace=4bf92f3577b34da6a3ce929d0e0e4736 \
             span=00f067aa0ba902b7 parent=- duration=1.234ms status=ok"
        );
    }

    #[test]
    fn formats_child_with_error() {
        let parent = SpanId::from_hex("b7ad6b7169203331").unwrap_or(SpanId::INVALID);
        let line = format_span(&span(parent, Status::error("bad\nkey")));
        assert!(line.contains("parent=b7ad6b7169203331"), "{line}");
        assert!(line.ends_with("status=error(bad\\nkey)"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn export_then_shutdown() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let exporter = ConsoleSpanExporter::new();
        assert!(rt
            .block_on(exporter.export(vec![span(SpanId::INVALID, Status::Unset)]))
            .is_ok());
        assert!(exporter.shutdown().is_ok());
        let res = rt.block_on(exporter.export(Vec::new()));
        assert!(matches!(res, Err(OTelSdkError::AlreadyShutdown)));
    }
}
