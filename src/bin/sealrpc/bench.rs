//! `sealrpc bench`: a server and a client in this process on loopback;
//! latency (one in flight) and throughput (many in flight) per transport,
//! payload size and mode. A table on stdout, progress on stderr.
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
    /// sealed (channel, envelope), raw (the bare transport), or both.
    #[arg(long, value_enum, default_value = "both")]
    mode: ModeArg,
    /// on: trace every sealed call (100% sampling) into an in-memory
    /// exporter (needs the "otel" feature).
    #[arg(long, value_enum, default_value = "off")]
    tracing: Switch,
    /// Also write the results to FILE as a JSON array.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
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
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    Off,
    On,
}

pub async fn run(a: BenchArgs) -> Result<(), String> {
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
            ModeArg::Both => vec![Mode::Sealed, Mode::Raw],
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
    Ok(())
}
