//! Runs every combination in turn and turns timings into results.
use super::stats::{percentiles, rates};
use super::{raw, sealed, BenchConfig, BenchError, BenchResult, Mode};
use std::time::Duration;

/// Envelope and load bytes a sealed request adds to its body, rounded up.
const SEALED_OVERHEAD: usize = 1024;

/// What one combination measured.
pub(crate) struct Measured {
    /// One round trip each, one request in flight.
    pub latencies: Vec<Duration>,
    /// The whole throughput run.
    pub elapsed: Duration,
    /// With tracing on: the spans the exporter received.
    pub spans_exported: Option<usize>,
}

/// Runs every transport × size × mode of `cfg`, calling `progress` with a
/// one-line description before each, and returns one result per
/// combination (in that order).
pub async fn run(
    cfg: &BenchConfig,
    mut progress: impl FnMut(&str),
) -> Result<Vec<BenchResult>, BenchError> {
    check(cfg)?;
    let total = cfg.transports.len() * cfg.sizes.len() * cfg.modes.len();
    let tracing = if cfg.tracing { "on" } else { "off" };
    let mut results = Vec::with_capacity(total);
    for &transport in &cfg.transports {
        for &size in &cfg.sizes {
            for &mode in &cfg.modes {
                progress(&format!(
                    "[{}/{total}] {} {size} B {} tracing {tracing}",
                    results.len() + 1,
                    transport.name(),
                    mode.name()
                ));
                let mut m = on_worker(transport, size, mode, cfg).await?;
                if let Some(n) = m.spans_exported {
                    let calls = cfg.requests
                        + cfg.requests.min(super::WARMUP_ROUND_TRIPS)
                        + cfg.requests.min(super::LATENCY_ROUND_TRIPS);
                    progress(&format!(
                        "  {n} spans exported for {calls} calls (a client and a server span each)"
                    ));
                }
                let (p50_us, p99_us, p999_us) = percentiles(&mut m.latencies);
                let (req_per_s, mib_per_s) = rates(cfg.requests, size, m.elapsed);
                results.push(BenchResult {
                    transport: transport.name(),
                    size,
                    mode: mode.name(),
                    tracing,
                    inflight: cfg.inflight,
                    requests: cfg.requests,
                    p50_us,
                    p99_us,
                    p999_us,
                    req_per_s,
                    mib_per_s,
                });
            }
        }
    }
    Ok(results)
}

/// Measures one combination in a spawned task, on a runtime worker: the
/// caller may be `block_on`'s thread, and a client driven from there would
/// pay a cross-thread wake-up (a futex) on every reply that server and
/// client tasks on the worker do not pay.
async fn on_worker(
    transport: super::Transport,
    size: usize,
    mode: Mode,
    cfg: &BenchConfig,
) -> Result<Measured, BenchError> {
    let cfg = cfg.clone();
    let task = tokio::spawn(async move {
        match mode {
            Mode::Sealed => sealed_run(transport, size, &cfg).await,
            Mode::Raw => raw::measure(transport, size, &cfg, mode, (raw::Plain, raw::Plain)).await,
            Mode::Loop => {
                raw::measure(transport, size, &cfg, mode, super::sealed_loop::pair()).await
            }
        }
    });
    task.await.map_err(|e| BenchError::Run {
        transport: transport.name(),
        mode: mode.name(),
        source: crate::Error::Body(format!("the measuring task failed: {e}")),
    })?
}

fn check(cfg: &BenchConfig) -> Result<(), BenchError> {
    if cfg.transports.is_empty() || cfg.sizes.is_empty() || cfg.modes.is_empty() {
        return Err(BenchError::Empty);
    }
    if cfg.inflight == 0 {
        return Err(BenchError::Zero("inflight"));
    }
    if cfg.requests == 0 {
        return Err(BenchError::Zero("requests"));
    }
    let max = crate::transport::DEFAULT_MAX_FRAME - SEALED_OVERHEAD;
    if let Some(&size) = cfg.sizes.iter().find(|&&s| s > max) {
        return Err(BenchError::TooLarge { size, max });
    }
    if cfg.tracing && !cfg!(feature = "otel") {
        return Err(BenchError::TracingUnavailable);
    }
    Ok(())
}

/// A sealed run; with tracing on, every call is traced (100% sampling)
/// through the SDK's batch processor, as a deployment exports, into an
/// exporter that counts the spans and drops them.
async fn sealed_run(
    transport: super::Transport,
    size: usize,
    cfg: &BenchConfig,
) -> Result<Measured, BenchError> {
    #[cfg(feature = "otel")]
    if cfg.tracing {
        use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};
        let exporter = Counting::default();
        // A queue deep enough for this rate: the default (2048) would drop
        // spans, and dropped spans would make tracing look cheaper.
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(1 << 16)
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(exporter.clone())
                    .with_batch_config(batch)
                    .build(),
            )
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
            .build();
        let telemetry = crate::telemetry::Telemetry::from_provider(provider);
        let mut m = sealed::measure(transport, size, cfg, Some(telemetry.clone())).await?;
        telemetry.shutdown().await;
        m.spans_exported = Some(exporter.spans());
        return Ok(m);
    }
    sealed::measure(transport, size, cfg, None).await
}

/// An exporter that counts the spans it is given.
#[cfg(feature = "otel")]
#[derive(Clone, Debug, Default)]
struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[cfg(feature = "otel")]
impl Counting {
    fn spans(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(feature = "otel")]
impl opentelemetry_sdk::trace::SpanExporter for Counting {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0
            .fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
