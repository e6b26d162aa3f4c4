//! A [`SpanExporter`] that appends OTLP JSON to a file: one
//! `ExportTraceServiceRequest` per line, per export batch. This is the
//! OpenTelemetry Collector file-exporter format (camelCase keys, hex
//! `traceId`/`spanId`, enums as integers), produced by `opentelemetry-proto`'s
//! serde support, so `otelcol`'s `otlpjsonfile` receiver can read it back.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// Appends one OTLP JSON line per export batch to a file. I/O errors are
/// returned as [`OTelSdkError::InternalFailure`]; nothing panics.
#[derive(Debug)]
pub struct FileSpanExporter {
    path: PathBuf,
    file: Mutex<File>,
    resource: ResourceAttributesWithSchema,
    is_shutdown: AtomicBool,
}

impl FileSpanExporter {
    /// Opens (creating if needed) `path` in append mode.
    pub fn new(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FileSpanExporter {
            path,
            file: Mutex::new(file),
            resource: ResourceAttributesWithSchema::default(),
            is_shutdown: AtomicBool::new(false),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serializes one batch as a single JSON line (with trailing newline).
    pub fn encode_batch(&self, batch: Vec<SpanData>) -> Result<Vec<u8>, OTelSdkError> {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let mut line = serde_json::to_vec(&request)
            .map_err(|e| OTelSdkError::InternalFailure(format!("encoding spans as JSON: {e}")))?;
        line.push(b'\n');
        Ok(line)
    }

    fn write_line(&self, line: &[u8]) -> OTelSdkResult {
        let fail = |e: std::io::Error| {
            OTelSdkError::InternalFailure(format!("writing {}: {e}", self.path.display()))
        };
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("trace file lock poisoned".into()))?;
        file.write_all(line).map_err(fail)?;
        file.flush().map_err(fail)
    }
}

impl SpanExporter for FileSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.is_shutdown.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let line = self.encode_batch(batch)?;
        self.write_line(&line)
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        if self.is_shutdown.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.force_flush()
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("trace file lock poisoned".into()))?;
        file.flush().map_err(|e| {
            OTelSdkError::InternalFailure(format!("flushing {}: {e}", self.path.display()))
        })
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::config::{ExporterKind, SamplerConfig, TracingConfig};
    use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry::{Context, KeyValue};
    use serde_json::Value;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn temp_path(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        std::env::temp_dir().join(format!(
            "sealrpc-{tag}-{}-{nanos}.jsonl",
            std::process::id()
        ))
    }

    fn file_config(path: &Path) -> TracingConfig {
        TracingConfig {
            exporter: ExporterKind::File,
            endpoint: String::new(),
            headers: BTreeMap::new(),
            insecure: false,
            timeout: Duration::from_secs(10),
            file: Some(path.to_path_buf()),
            sampler: SamplerConfig::ParentBasedAlwaysOn,
            service_name: "sealrpc-test".into(),
            resource: BTreeMap::from([("deployment.environment.name".into(), "test".into())]),
        }
    }

    #[test]
    fn provider_writes_collector_format_json_lines() {
        let path = temp_path("file-exporter");
        let provider = crate::telemetry::exporter::build_provider(&file_config(&path))
            .expect("build provider");
        let tracer = provider.tracer("sealrpc-test-scope");
        let parent = tracer
            .span_builder("parent")
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("rpc.system", "sealrpc")])
            .start(&tracer);
        let cx = Context::current_with_span(parent);
        let mut child = tracer
            .span_builder("child")
            .with_kind(SpanKind::Server)
            .start_with_context(&tracer, &cx);
        opentelemetry::trace::Span::end(&mut child);
        cx.span().end();
        provider.shutdown().expect("shutdown");

        let text = std::fs::read_to_string(&path).expect("read trace file");
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines.is_empty());
        let mut spans = Vec::new();
        for line in &lines {
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            let rs = &v["resourceSpans"][0];
            let attrs = rs["resource"]["attributes"]
                .as_array()
                .expect("resource attributes");
            let has = |k: &str| attrs.iter().any(|a| a["key"] == k);
            assert!(
                has("service.name")
                    && has("telemetry.sdk.name")
                    && has("deployment.environment.name")
            );
            assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "sealrpc-test-scope");
            spans.extend(
                rs["scopeSpans"][0]["spans"]
                    .as_array()
                    .expect("spans")
                    .iter()
                    .cloned(),
            );
            // Round-trip into the proto type.
            let req: ExportTraceServiceRequest = serde_json::from_str(line).expect("deserialize");
            assert_eq!(serde_json::to_value(&req).expect("re-encode"), v);
        }
        assert_eq!(spans.len(), 2, "{text}");
        let by_name = |n: &str| spans.iter().find(|s| s["name"] == n).expect("span by name");
        let (parent, child) = (by_name("parent"), by_name("child"));
        let hex = |v: &Value, len: usize| {
            let s = v.as_str().expect("hex string");
            s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
        };
        assert!(hex(&parent["traceId"], 32) && hex(&parent["spanId"], 16));
        assert_eq!(child["parentSpanId"], parent["spanId"]);
        assert_eq!(child["traceId"], parent["traceId"]);
        assert_eq!(parent["kind"].as_i64(), Some(3), "CLIENT = 3");
        assert_eq!(child["kind"].as_i64(), Some(2), "SERVER = 2");
        assert!(parent["parentSpanId"].as_str().is_none_or(str::is_empty));
    }

    #[test]
    fn open_failure_is_an_error_and_export_after_shutdown_fails() {
        let dir = temp_path("no-such-dir");
        assert!(FileSpanExporter::new(dir.join("x/y.jsonl")).is_err());
        let path = temp_path("shutdown");
        let exporter = FileSpanExporter::new(&path).expect("open");
        assert!(exporter.shutdown().is_ok());
        let res = futures_executor_block_on(exporter.export(Vec::new()));
        assert!(matches!(res, Err(OTelSdkError::AlreadyShutdown)));
        let _ = std::fs::remove_file(&path);
    }

    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }
}
