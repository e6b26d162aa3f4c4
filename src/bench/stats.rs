//! Percentiles, rates and the results table.
use super::BenchResult;
use std::fmt::Write;
use std::time::Duration;

/// Latency percentiles in µs (nearest rank): p50, p99, p99.9.
pub(crate) fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let rank = (q * samples.len() as f64).ceil() as usize;
        let i = rank.clamp(1, samples.len()) - 1;
        round3(samples[i].as_secs_f64() * 1e6)
    };
    (at(0.50), at(0.99), at(0.999))
}

/// Requests per second and payload MiB per second (both ways).
pub(crate) fn rates(requests: usize, size: usize, elapsed: Duration) -> (f64, f64) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let req_per_s = requests as f64 / secs;
    let bytes = 2.0 * size as f64 * requests as f64;
    (
        round3(req_per_s),
        round3(bytes / secs / (1u64 << 20) as f64),
    )
}

/// Three decimals are plenty (and keep the JSON readable).
fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// The results as a text table, one row per result. When a sealed row has
/// a raw row with the same transport, size and tracing, a `sealed/raw`
/// column shows the sealed throughput as a fraction of the raw one.
pub fn render_table(results: &[BenchResult]) -> String {
    let ratios =
        results.iter().any(|r| r.mode == "raw") && results.iter().any(|r| r.mode == "sealed");
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<9} {:>8} {:<6} {:<7} {:>8} {:>10} {:>10} {:>10} {:>11} {:>9}",
        "transport",
        "size",
        "mode",
        "tracing",
        "inflight",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "req/s",
        "MiB/s"
    );
    if ratios {
        let _ = write!(out, " {:>10}", "sealed/raw");
    }
    out.push('\n');
    for r in results {
        let _ = write!(
            out,
            "{:<9} {:>8} {:<6} {:<7} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>11.0} {:>9.2}",
            r.transport,
            r.size,
            r.mode,
            r.tracing,
            r.inflight,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.req_per_s,
            r.mib_per_s
        );
        if ratios {
            let raw = results.iter().find(|o| {
                o.mode == "raw"
                    && o.transport == r.transport
                    && o.size == r.size
                    && o.tracing == r.tracing
            });
            match raw {
                Some(raw) if r.mode != "raw" && raw.req_per_s > 0.0 => {
                    let _ = write!(out, " {:>10.2}", r.req_per_s / raw.req_per_s);
                }
                _ => {
                    let _ = write!(out, " {:>10}", "");
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let (p50, p99, p999) = percentiles(&mut s);
        assert_eq!((p50, p99, p999), (500.0, 990.0, 999.0));
        let mut one = vec![Duration::from_micros(7)];
        assert_eq!(percentiles(&mut one), (7.0, 7.0, 7.0));
    }

    #[test]
    fn rates_count_both_directions() {
        let (rps, mib) = rates(1024, 512, Duration::from_secs(1));
        assert_eq!(rps, 1024.0);
        assert_eq!(mib, 1.0);
    }
}
