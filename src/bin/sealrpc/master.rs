//! `sealrpc master`: serve the built-in methods until SIGTERM or Ctrl-C.
use super::node::NodeArgs;
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::channel::Router;
use sealrpc::master::{Master, MasterOptions, MasterPki};
use sealrpc::telemetry::config::Role;

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
    #[command(flatten)]
    trace: TraceArgs,
}

pub async fn run(a: MasterArgs) -> Result<(), String> {
    // A socket per minion (two on ZeroMQ): raise the soft open-file limit
    // to the hard one, as far as this process may.
    if let Err(e) = sealrpc::rlimit::raise_open_files(0) {
        tracing::warn!("open-file limit: {e}");
    }
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
        .map_err(|e| e.to_string())?;
    for url in master.local_urls().map_err(|e| e.to_string())? {
        eprintln!("sealrpc master listening on {url}");
    }
    if let Some(addr) = master.publish_addr() {
        eprintln!("sealrpc master publishing on zmq://{addr}");
    }
    let result = master
        .run(shutdown_signal())
        .await
        .map_err(|e| e.to_string());
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
