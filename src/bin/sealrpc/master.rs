//! `sealrpc master`: serve the built-in methods until SIGTERM or Ctrl-C.
//!
//! On either signal the master shuts down gracefully (see
//! `sealrpc::channel::Server::run`): it stops accepting connections at
//! once and prints `sealrpc master stopping: …`; requests in flight, and
//! jobs being published with the returns they wait for, run on for up to
//! `--grace` seconds, while new requests on open connections are refused
//! (`Error::Overloaded`). Whatever still runs at the end of the grace
//! period is cancelled: its caller sees the connection close and its span
//! ends as cancelled. Then the spans are flushed, `sealrpc master stopped`
//! is printed and the process exits 0.
use super::node::NodeArgs;
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::channel::Router;
use sealrpc::master::{Master, MasterOptions, MasterPki};
use sealrpc::telemetry::config::Role;
use std::time::Duration;

#[derive(Args)]
pub struct MasterArgs {
    /// Address to listen on: tcp://HOST:PORT, ws://HOST:PORT/PATH or
    /// zmq://HOST:PORT. Repeat to listen on several at once.
    #[arg(long, default_value = "tcp://127.0.0.1:4506")]
    listen: Vec<String>,
    /// Port of the ZeroMQ PUB socket (with a zmq:// listener; same host).
    /// 0 picks a free port; minions learn it when they register.
    #[arg(long, default_value_t = 0)]
    publish_port: u16,
    #[command(flatten)]
    node: NodeArgs,
    /// Accept every new minion key at once (off by default: new keys wait
    /// as pending until `sealrpc key accept`). With --pki-dir.
    #[arg(long)]
    auto_accept: bool,
    /// A minion whose trace context is not trusted: its requests start new
    /// traces linked to its context. Repeatable. With --pki-dir.
    #[arg(long)]
    untrusted_trace: Vec<String>,
    /// On SIGTERM or Ctrl-C: seconds that requests in flight (and jobs
    /// being published) may run on before they are cancelled.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    grace: f64,
    #[command(flatten)]
    trace: TraceArgs,
}

/// `--grace SECS` as a duration: finite and not negative.
pub fn grace_period(secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= Duration::from_secs(86_400))
        .ok_or_else(|| format!("--grace must be 0 to 86400 seconds, not {secs}"))
}

pub async fn run(a: MasterArgs) -> Result<(), String> {
    // A socket per minion (two on ZeroMQ): raise the soft open-file limit
    // to the hard one, as far as this process may.
    if let Err(e) = sealrpc::rlimit::raise_open_files(0) {
        tracing::warn!("open-file limit: {e}");
    }
    let grace = grace_period(a.grace)?;
    let cfg = a.node.config()?;
    let telemetry = trace::start(Role::Master, &a.trace)?;
    let cfg = cfg.with_telemetry(telemetry.clone());
    let opts = MasterOptions {
        publish_port: a.publish_port,
        pki: a.node.pki_dir.clone().map(|dir| MasterPki {
            dir,
            auto_accept: a.auto_accept,
            untrusted_context: a.untrusted_trace.clone(),
        }),
    };
    let router = sealrpc::builtin::register(Router::new());
    let master = Master::bind(&a.listen, router, cfg, opts)
        .await
        .map_err(|e| e.to_string())?
        .with_grace(grace);
    for url in master.local_urls().map_err(|e| e.to_string())? {
        eprintln!("sealrpc master listening on {url}");
    }
    if let Some(addr) = master.publish_addr() {
        eprintln!("sealrpc master publishing on zmq://{addr}");
    }
    let stopping = master.stopped_accepting();
    let announce = tokio::spawn(async move {
        stopping.await;
        eprintln!(
            "sealrpc master stopping: no longer accepting connections; \
             requests in flight have up to {grace:?}"
        );
    });
    let result = master
        .run(shutdown_signal())
        .await
        .map_err(|e| e.to_string());
    // Printed once the listeners closed; `run` has returned after that.
    let _ = announce.await;
    eprintln!("sealrpc master stopped");
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    result
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
