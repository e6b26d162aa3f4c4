//! Builds the [`SdkTracerProvider`] from a resolved [`TracingConfig`].
//!
//! Every exporter sits behind the SDK's [`BatchSpanProcessor`] (default
//! settings: 2048-span queue, 512-span batches, 5 s delay). It runs on its
//! own OS thread; ending a span only enqueues it, and a full queue drops
//! spans. So an unreachable or slow collector never blocks or fails an RPC:
//! only the batch thread ever talks to it.
//!
//! [`BatchSpanProcessor`]: opentelemetry_sdk::trace::BatchSpanProcessor
use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use super::config::{ExporterKind, SamplerConfig, TelemetryError, TracingConfig};
use super::console_exporter::ConsoleSpanExporter;
use super::file_exporter::FileSpanExporter;

/// Builds the tracer provider for `cfg`: sampler, resource, and one batch
/// exporter.
///
/// - otlp-http: http/protobuf through a blocking reqwest client (used only
///   on the batch thread), with `cfg.endpoint` used as is.
/// - otlp-grpc: tonic. **Must be called inside a Tokio runtime** (tonic
///   spawns its channel worker on it); otherwise this returns
///   [`TelemetryError::Build`] instead of panicking. The runtime must
///   outlive the provider.
/// - console / file: our own exporters; the file is opened (append, create)
///   here, so a bad path is reported now.
///
/// The resource is `telemetry.sdk.*`, then `cfg.resource`, then
/// `service.name`; the SDK's own `OTEL_RESOURCE_ATTRIBUTES`/
/// `OTEL_SERVICE_NAME` detectors are skipped since `cfg` already resolved
/// them with our precedence.
pub(crate) fn build_provider(cfg: &TracingConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let builder = SdkTracerProvider::builder()
        .with_sampler(sampler(&cfg.sampler))
        .with_resource(resource(cfg));
    let builder = match cfg.exporter {
        ExporterKind::OtlpHttp => builder.with_batch_exporter(otlp_http(cfg)?),
        ExporterKind::OtlpGrpc => builder.with_batch_exporter(otlp_grpc(cfg)?),
        ExporterKind::Console => builder.with_batch_exporter(ConsoleSpanExporter::new()),
        ExporterKind::File => {
            let path = cfg
                .file
                .as_ref()
                .ok_or(super::config::ConfigError::FileExporterNeedsPath)?;
            let exporter = FileSpanExporter::new(path).map_err(|e| {
                TelemetryError::Build(format!("opening trace file {}: {e}", path.display()))
            })?;
            builder.with_batch_exporter(exporter)
        }
        ExporterKind::None => {
            return Err(TelemetryError::Build(
                "exporter `none` cannot build a provider".into(),
            ))
        }
    };
    Ok(builder.build())
}

/// The SDK sampler for a [`SamplerConfig`].
pub(crate) fn sampler(cfg: &SamplerConfig) -> Sampler {
    match *cfg {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

fn resource(cfg: &TracingConfig) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            cfg.resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(cfg.service_name.clone())
        .build()
}

fn build_err(kind: ExporterKind, e: impl std::fmt::Display) -> TelemetryError {
    TelemetryError::Build(format!("{kind} exporter: {e}"))
}

fn otlp_http(cfg: &TracingConfig) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    // `with_headers` percent-decodes values again; our values are already
    // decoded, so re-escape `%` to keep them literal.
    let headers: HashMap<String, String> = cfg
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.replace('%', "%25")))
        .collect();
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.endpoint.clone())
        .with_headers(headers)
        .with_timeout(cfg.timeout)
        .build()
        .map_err(|e| build_err(cfg.exporter, e))
}

fn otlp_grpc(cfg: &TracingConfig) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(build_err(
            cfg.exporter,
            "must be built inside a Tokio runtime",
        ));
    }
    // HashMap -> http::HeaderMap (names lowercased, validated) -> MetadataMap.
    let headers: HashMap<String, String> = cfg.headers.clone().into_iter().collect();
    let metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(
        (&headers)
            .try_into()
            .map_err(|e| build_err(cfg.exporter, format!("invalid gRPC metadata: {e}")))?,
    );
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(cfg.endpoint.clone())
        .with_metadata(metadata)
        .with_timeout(cfg.timeout)
        .build()
        .map_err(|e| build_err(cfg.exporter, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    fn cfg(exporter: ExporterKind, endpoint: &str) -> TracingConfig {
        TracingConfig {
            exporter,
            endpoint: endpoint.into(),
            headers: BTreeMap::from([("X-Api-Key".into(), "100%".into())]),
            insecure: false,
            timeout: Duration::from_millis(200),
            file: None,
            sampler: SamplerConfig::ParentBasedTraceIdRatio(0.5),
            service_name: "sealrpc-test".into(),
            resource: BTreeMap::new(),
        }
    }

    #[test]
    fn unreachable_http_collector_never_blocks_spans() {
        // Port 9 (discard) on localhost: nothing listens there.
        let provider = build_provider(&cfg(ExporterKind::OtlpHttp, "http://127.0.0.1:9/v1/traces"))
            .expect("http provider");
        let tracer = provider.tracer("t");
        let start = Instant::now();
        for _ in 0..100 {
            tracer.in_span("rpc", |_| ());
        }
        assert!(start.elapsed() < Duration::from_secs(1));
        let _ = provider.shutdown(); // export fails; must not panic
    }

    #[test]
    fn grpc_outside_runtime_is_an_error_not_a_panic() {
        let err = build_provider(&cfg(ExporterKind::OtlpGrpc, "http://127.0.0.1:9")).err();
        assert!(matches!(err, Some(TelemetryError::Build(m)) if m.contains("Tokio")));
    }

    #[test]
    fn grpc_inside_runtime_builds() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let provider = rt
            .block_on(async { build_provider(&cfg(ExporterKind::OtlpGrpc, "http://127.0.0.1:9")) });
        let provider = provider.expect("grpc provider");
        provider.tracer("t").in_span("rpc", |_| ());
        let _ = provider.shutdown();
    }

    #[test]
    fn bad_file_path_and_none_are_errors() {
        let mut c = cfg(ExporterKind::File, "");
        c.file = Some(std::env::temp_dir().join("sealrpc-no-such-dir-xyz/a/b.jsonl"));
        assert!(matches!(build_provider(&c), Err(TelemetryError::Build(_))));
        c.file = None;
        assert!(matches!(build_provider(&c), Err(TelemetryError::Config(_))));
        assert!(build_provider(&cfg(ExporterKind::None, "")).is_err());
    }

    #[test]
    fn console_provider_builds() {
        let provider = build_provider(&cfg(ExporterKind::Console, "")).expect("console");
        provider.tracer("t").in_span("console-span", |_| ());
        assert!(provider.shutdown().is_ok());
    }
}
