//! `sealrpc bench --minions N`: N authenticated minions in this process,
//! the master as a child process (this executable's `master` command), one
//! job to all of them (see `sealrpc::bench::minions`). A table on stdout,
//! progress on stderr, and with `--json FILE` the report as one object.
use sealrpc::bench::minions::{self, MinionBenchConfig};
use sealrpc::bench::Transport;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the minions may take to connect: generous, as every one of
/// them does a handshake on a machine the master shares.
fn connect_timeout(n: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(20) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// This executable, or `SEALRPC_BENCH_MASTER` (a wrapper that runs the
/// master under a profiler, say; the figures are then the wrapper's).
fn master_exe() -> Result<PathBuf, String> {
    match std::env::var_os("SEALRPC_BENCH_MASTER") {
        Some(exe) => Ok(PathBuf::from(exe)),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to run the master: {e}")),
    }
}

/// The job timeout without `--job-timeout`, in seconds.
const JOB_TIMEOUT: f64 = 10.0;

pub async fn run(
    n: u32,
    transport: Transport,
    job_timeout: Option<f64>,
    json: Option<&Path>,
) -> Result<(), String> {
    let job_timeout = Duration::try_from_secs_f64(job_timeout.unwrap_or(JOB_TIMEOUT))
        .ok()
        .filter(|d| !d.is_zero() && *d < Duration::from_secs(86_400))
        .ok_or("--job-timeout must be a positive number of seconds")?;
    let n = usize::try_from(n).map_err(|e| format!("--minions: {e}"))?;
    let cfg = MinionBenchConfig {
        transport,
        minions: n,
        job_timeout,
        connect_timeout: connect_timeout(n),
        master_exe: master_exe()?,
    };
    // On Ctrl-C or SIGTERM the run is dropped, which stops the master and
    // removes the bench's PKI dir (its master and admin secret keys too).
    let report = tokio::select! {
        r = minions::run(&cfg, |line| eprintln!("bench {line}")) => r.map_err(|e| e.to_string())?,
        _ = super::master::shutdown_signal() => return Err("interrupted".into()),
    };
    print!("{}", minions::render_table(&report));
    if let Some(path) = json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
