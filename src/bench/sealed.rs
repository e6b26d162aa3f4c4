//! Sealed mode: a channel server serving `bench.echo`, and a client.
use super::run::Measured;
use super::{BenchConfig, BenchError, Mode, Transport};
use crate::channel::{ChannelConfig, Client, Router, Server};
use crate::keys::Key;
use crate::telemetry::Telemetry;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const METHOD: &str = "bench.echo";

/// Runs both measurements for one transport and size.
pub(crate) async fn measure(
    transport: Transport,
    size: usize,
    bench: &BenchConfig,
    telemetry: Option<Telemetry>,
) -> Result<Measured, BenchError> {
    let err = |source| BenchError::Run {
        transport: transport.name(),
        mode: Mode::Sealed.name(),
        source,
    };
    let mut cfg = ChannelConfig::new(Key::generate()).with_telemetry(telemetry);
    cfg.max_in_flight = cfg.max_in_flight.max(bench.inflight);
    let router = Router::new().route(METHOD, |req| async move { Ok(req.body) });
    let server = Server::bind(transport.url(), router, cfg.clone())
        .await
        .map_err(err)?
        .with_grace(Duration::from_secs(1));
    let url = server.local_url().map_err(err)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run(async {
        let _ = stop_rx.await;
    }));
    let result = async {
        let client = Client::connect(&url, cfg).await?;
        let payload = Bytes::from(vec![0xa5u8; size]);
        for _ in 0..bench.requests.min(super::WARMUP_ROUND_TRIPS) {
            client.call(METHOD, payload.clone()).await?;
        }
        let mut latencies = Vec::new();
        for _ in 0..bench.requests.min(super::LATENCY_ROUND_TRIPS) {
            let start = Instant::now();
            client.call(METHOD, payload.clone()).await?;
            latencies.push(start.elapsed());
        }
        let elapsed = pipelined(&client, &payload, bench).await?;
        Ok(Measured {
            latencies,
            elapsed,
            spans_exported: None,
        })
    }
    .await
    .map_err(err);
    let _ = stop_tx.send(());
    let _ = served.await;
    result
}

/// `bench.inflight` tasks calling until `bench.requests` calls are done.
async fn pipelined(
    client: &Client,
    payload: &Bytes,
    bench: &BenchConfig,
) -> Result<Duration, crate::Error> {
    let issued = Arc::new(AtomicUsize::new(0));
    let requests = bench.requests;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..bench.inflight.min(requests) {
        let (client, payload, issued) = (client.clone(), payload.clone(), issued.clone());
        tasks.spawn(async move {
            while issued.fetch_add(1, Ordering::Relaxed) < requests {
                let reply = client.call(METHOD, payload.clone()).await?;
                if reply.len() != payload.len() {
                    return Err(crate::Error::Body(format!(
                        "echo of {} bytes came back as {}",
                        payload.len(),
                        reply.len()
                    )));
                }
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => r?,
            Err(e) => return Err(crate::Error::Body(format!("bench task failed: {e}"))),
        }
    }
    Ok(start.elapsed())
}
