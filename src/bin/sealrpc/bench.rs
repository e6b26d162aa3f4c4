//! `sealrpc bench`: a server and a client in this process on loopback;
//! latency (one in flight) and throughput (many in flight) per transport,
//! payload size and mode. A table on stdout, progress on stderr; optionally
//! the rows as JSON (`--json`) and an SVG chart (`--plot`).
use clap::{Args, ValueEnum};
use sealrpc::bench::{self, BenchConfig, Mode, Transport};
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    /// The transport(s) to measure.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: TransportArg,
    /// Payload sizes in bytes, comma-separated (request body = reply body).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    size: Vec<usize>,
    /// Requests in flight in the throughput run.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    inflight: u32,
    /// Requests in the throughput run (the latency run makes
    /// min(REQUESTS, 5000) sequential round trips).
    #[arg(long, default_value_t = 20000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// sealed (the channel), raw (the bare transport), loop (a minimal
    /// hand-written sealed echo: the envelope without the channel), both
    /// (sealed and raw) or all three.
    #[arg(long, value_enum, default_value = "both")]
    mode: ModeArg,
    /// on: trace every sealed call (100% sampling) into an in-memory
    /// exporter (needs the "otel" feature).
    #[arg(long, value_enum, default_value = "off")]
    tracing: Switch,
    /// Also write the results to FILE as a JSON array.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw the results to FILE as an SVG chart (latency and
    /// throughput per transport and size, sealed beside raw).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Instead: N authenticated minions connect to a master process, one
    /// job goes to all of them; connect time, publish to last return,
    /// returns, the master's peak RSS (one --transport; --json: an object).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with_all = ["size", "inflight", "requests", "mode", "tracing", "plot"])]
    minions: Option<u32>,
    /// With --minions: seconds the master waits for the returns [default: 10].
    #[arg(long, value_name = "SECONDS")]
    job_timeout: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Tcp,
    Zmq,
    Ws,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Sealed,
    Raw,
    Loop,
    Both,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    Off,
    On,
}

pub async fn run(a: BenchArgs) -> Result<(), String> {
    if let Some(n) = a.minions {
        let transport = match a.transport {
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Zmq => Transport::Zmq,
            TransportArg::Ws => Transport::Ws,
            TransportArg::All => {
                return Err("--minions takes one --transport: tcp, zmq or ws".into())
            }
        };
        return super::bench_minions::run(n, transport, a.job_timeout, a.json.as_deref()).await;
    }
    if a.job_timeout.is_some() {
        return Err("--job-timeout needs --minions".into());
    }
    if a.tracing == Switch::On && !cfg!(feature = "otel") {
        return Err(bench::BenchError::TracingUnavailable.to_string());
    }
    let cfg = BenchConfig {
        transports: match a.transport {
            TransportArg::Tcp => vec![Transport::Tcp],
            TransportArg::Zmq => vec![Transport::Zmq],
            TransportArg::Ws => vec![Transport::Ws],
            TransportArg::All => Transport::ALL.to_vec(),
        },
        sizes: a.size,
        inflight: usize::try_from(a.inflight).map_err(|e| format!("--inflight: {e}"))?,
        requests: usize::try_from(a.requests).map_err(|e| format!("--requests: {e}"))?,
        modes: match a.mode {
            ModeArg::Sealed => vec![Mode::Sealed],
            ModeArg::Raw => vec![Mode::Raw],
            ModeArg::Loop => vec![Mode::Loop],
            ModeArg::Both => vec![Mode::Sealed, Mode::Raw],
            ModeArg::All => vec![Mode::Sealed, Mode::Loop, Mode::Raw],
        },
        tracing: a.tracing == Switch::On,
    };
    let results = bench::run(&cfg, |line| eprintln!("bench {line}"))
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", bench::render_table(&results));
    if let Some(path) = &a.json {
        let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &a.plot {
        let title = format!(
            "sealrpc bench: {} requests ({} sequential for latency), {} in flight, tracing {}",
            cfg.requests,
            cfg.requests.min(bench::LATENCY_ROUND_TRIPS),
            cfg.inflight,
            if cfg.tracing { "on" } else { "off" }
        );
        std::fs::write(path, bench::render_svg(&results, &title))
            .map_err(|e| format!("--plot {}: cannot write the chart: {e}", path.display()))?;
    }
    Ok(())
}
