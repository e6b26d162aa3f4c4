//! `sealrpc bench --minions N`: N authenticated minions against one real
//! master, one job to all of them, every return collected.
//!
//! - The **master** is a child process (`EXE master --listen URL --pki-dir
//!   DIR`), so its peak RSS (`VmHWM`) and CPU time are its own. Its PKI dir
//!   is fresh, with the master's and the admin's key pairs and all N
//!   minion keys already accepted (the steady state of a deployment).
//! - The **minions** run in this process: the library's `Minion`, one task
//!   each in one runtime, each with its own key pair (a Noise XX handshake
//!   per connection) and the master's key pinned.
//! - The **job** is `test.ping` to `*`, published as the admin (as
//!   `sealrpc publish --pki-dir MASTER_DIR` does); the publish call ends
//!   when every return is in, or at the job timeout.
//!
//! Figures: connect time (start, key generation included, until all N are
//! registered and ready), publish-to-last-return time (the publish call's
//! round trip: it returns only once every return is in, so it includes the
//! report's trip back), returns received and missing, and the master's
//! peak RSS and CPU time.
mod admin;
mod keys;
pub(crate) mod master;
mod swarm;

use super::Transport;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct MinionBenchConfig {
    pub transport: Transport,
    /// Minions (at least 1).
    pub minions: usize,
    /// How long the master waits for returns.
    pub job_timeout: Duration,
    /// How long the minions may take to connect; the job then goes to
    /// those that did.
    pub connect_timeout: Duration,
    /// The `sealrpc` executable that runs the master (`EXE master …`).
    pub master_exe: PathBuf,
}

/// One run's figures (the `--json` object).
#[derive(Clone, Debug, Serialize)]
pub struct MinionBenchReport {
    pub transport: &'static str,
    pub minions: usize,
    /// Start (before key generation) until all minions were registered
    /// and ready, in ms (or until the connect timeout).
    pub connect_ms: f64,
    /// The part of `connect_ms` before the first minion started: key
    /// generation, the PKI dir, the master process starting.
    pub setup_ms: f64,
    /// Minions registered and ready when the job was published.
    pub connected: usize,
    /// The publish call's round trip: publish until the last return.
    pub publish_to_last_return_ms: f64,
    /// Minions whose return arrived (and succeeded).
    pub returned: usize,
    /// Minions that returned an error.
    pub failed: usize,
    /// Minions with no return (including any that never connected).
    pub missing: usize,
    /// The master process's peak resident set size (`VmHWM`), in KiB.
    pub master_peak_rss_kib: u64,
    /// The master's CPU time (user + system) until all were connected, s.
    pub master_cpu_connect_s: f64,
    /// The master's CPU time during the publish, s.
    pub master_cpu_publish_s: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinionBenchError {
    #[error("--minions must be at least 1")]
    NoMinions,
    #[error(transparent)]
    Limit(#[from] crate::rlimit::RlimitError),
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Run(#[from] crate::Error),
    #[error("publishing as the admin ({connected} of {minions} minions had connected): {source}")]
    Publish {
        connected: usize,
        minions: usize,
        source: crate::Error,
    },
}

/// Open files per minion, in the master and in this process.
fn files_per_minion(t: Transport) -> u64 {
    match t {
        // A ROUTER/DEALER connection and a PUB/SUB connection.
        Transport::Zmq => 2,
        Transport::Tcp | Transport::Ws => 1,
    }
}

/// Runs the benchmark; `progress` gets one-line updates.
pub async fn run(
    cfg: &MinionBenchConfig,
    mut progress: impl FnMut(&str),
) -> Result<MinionBenchReport, MinionBenchError> {
    let n = cfg.minions;
    if n == 0 {
        return Err(MinionBenchError::NoMinions);
    }
    // The child master inherits the raised limit.
    let need = (n as u64) * files_per_minion(cfg.transport) + 512;
    crate::rlimit::raise_open_files(need)?;
    let start = Instant::now();
    progress(&format!("generating {n} minion key pairs"));
    let mut pki = keys::create(n).await?;
    let master =
        master::MasterChild::spawn(&cfg.master_exe, cfg.transport.url(), pki.dir()).await?;
    let setup = start.elapsed();
    progress(&format!(
        "master listening on {}; connecting {n} minions",
        master.url
    ));
    let minions = std::mem::take(&mut pki.minions);
    let deadline = Instant::now() + cfg.connect_timeout;
    let swarm = swarm::connect(&master.url, minions, pki.master, deadline, |r, n| {
        progress(&format!("{r}/{n} minions ready"))
    })
    .await?;
    let connect = start.elapsed();
    let connected = swarm.ready();
    let cpu_connected = master.cpu_ticks()?;
    let failed = |source| MinionBenchError::Publish {
        connected,
        minions: n,
        source,
    };
    let admin = admin::Admin::connect(&master.url, pki.admin.clone(), pki.master, cfg.job_timeout)
        .await
        .map_err(failed)?;
    progress(&format!("{connected}/{n} ready; publishing test.ping to *"));
    let cpu_before = master.cpu_ticks()?;
    let published = Instant::now();
    let job = admin.ping_all(cfg.job_timeout).await.map_err(failed)?;
    let publish = published.elapsed();
    let cpu_after = master.cpu_ticks()?;
    let peak = master.peak_rss_kib()?;
    drop(admin);
    swarm.stop().await;
    if let Err(e) = master.stop().await {
        progress(&format!("stopping the master: {e}"));
    }
    let returned = job.returns.values().filter(|r| r.ok).count();
    let failed = job.returns.len() - returned;
    Ok(MinionBenchReport {
        transport: cfg.transport.name(),
        minions: n,
        connect_ms: ms(connect),
        setup_ms: ms(setup),
        connected,
        publish_to_last_return_ms: ms(publish),
        returned,
        failed,
        missing: n - job.returns.len().min(n),
        master_peak_rss_kib: peak,
        master_cpu_connect_s: master::seconds(cpu_connected),
        master_cpu_publish_s: master::seconds(cpu_after.saturating_sub(cpu_before)),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The report as a table (a header line and one row).
pub fn render_table(r: &MinionBenchReport) -> String {
    let mut out = format!(
        "{:<9} {:>8} {:>11} {:>9} {:>9} {:>13} {:>8} {:>6} {:>7} {:>9} {:>9} {:>9}\n",
        "transport",
        "minions",
        "connect ms",
        "setup ms",
        "connected",
        "publish ms",
        "returned",
        "failed",
        "missing",
        "rss MiB",
        "cpu conn",
        "cpu pub"
    );
    let _ = writeln!(
        out,
        "{:<9} {:>8} {:>11.1} {:>9.1} {:>9} {:>13.1} {:>8} {:>6} {:>7} {:>9.1} {:>9.2} {:>9.2}",
        r.transport,
        r.minions,
        r.connect_ms,
        r.setup_ms,
        r.connected,
        r.publish_to_last_return_ms,
        r.returned,
        r.failed,
        r.missing,
        r.master_peak_rss_kib as f64 / 1024.0,
        r.master_cpu_connect_s,
        r.master_cpu_publish_s
    );
    out
}
