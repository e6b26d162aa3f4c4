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
                let mut m = match mode {
                    Mode::Sealed => sealed_run(transport, size, cfg).await?,
                    Mode::Raw => raw::measure(transport, size, cfg).await?,
                };
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

/// A sealed run, with a fresh in-memory trace collector when tracing is on
/// (100% sampling; spans kept in memory until the run ends).
async fn sealed_run(
    transport: super::Transport,
    size: usize,
    cfg: &BenchConfig,
) -> Result<Measured, BenchError> {
    #[cfg(feature = "otel")]
    if cfg.tracing {
        let (telemetry, collector) = crate::telemetry::memory::collecting("sealrpc-bench");
        let m = sealed::measure(transport, size, cfg, Some(telemetry.clone())).await;
        telemetry.shutdown().await;
        drop(collector);
        return m;
    }
    sealed::measure(transport, size, cfg, None).await
}
