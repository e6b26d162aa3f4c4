//! `sealrpc soak`: a master on every transport, clients and minions behind
//! fault-injecting relays, a million requests and a stream of jobs, and an
//! exact account of every outcome. Exits non-zero if anything was lost or
//! ran twice.
use clap::Args;
use sealrpc::soak::{self, SoakOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct SoakArgs {
    /// Requests in all, spread evenly over the transports.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Jobs published to every minion, one after the other, meanwhile.
    #[arg(long, default_value_t = 1000)]
    jobs: u64,
    /// Transports, comma-separated (tcp, ws, zmq).
    #[arg(long, value_delimiter = ',', default_value = "tcp,ws,zmq")]
    transport: Vec<String>,
    /// Minions per transport.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    minions: u32,
    /// Requests in flight per transport.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    inflight: u32,
    /// Probability, per relayed frame, of a fault: half of them cut the
    /// connection, half lose the frame.
    #[arg(long, default_value_t = 0.0002)]
    fault_rate: f64,
    /// Attempts per request (retries carry the request's retry key: the
    /// handler runs once).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    tries: u32,
    /// Deadline of each request (all its tries) and of each job, seconds.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Also write the report to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub async fn run(a: SoakArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&a.fault_rate) {
        return Err("--fault-rate must be within 0 to 1".into());
    }
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or("--timeout must be a positive number of seconds")?;
    let opts = SoakOptions {
        requests: a.requests,
        jobs: a.jobs,
        transports: a.transport,
        minions: a.minions as usize,
        inflight: a.inflight as usize,
        fault_rate: a.fault_rate,
        tries: a.tries,
        timeout,
    };
    let total = opts.requests;
    let tty = std::io::stderr().is_terminal();
    let ticks = std::sync::atomic::AtomicU64::new(0);
    let report = soak::run(&opts, move |done| {
        // A live counter on a terminal; a line every 10 s otherwise.
        let n = ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if tty {
            eprint!("\r{done} / {total} requests");
            let _ = std::io::stderr().flush();
        } else if n % 10 == 9 {
            eprintln!("{done} / {total} requests");
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    eprintln!();
    print!("{}", report.render());
    if let Some(path) = a.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if report.passed() {
        Ok(())
    } else {
        Err("soak failed: requests lost or run twice".into())
    }
}
