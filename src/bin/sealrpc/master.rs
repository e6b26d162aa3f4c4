//! `sealrpc master`: serve the built-in methods until SIGTERM or Ctrl-C.
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::channel::{ChannelConfig, Router, Server};
use sealrpc::keys::Key;
use sealrpc::telemetry::config::Role;
use std::path::PathBuf;

#[derive(Args)]
pub struct MasterArgs {
    /// Address to listen on: tcp://HOST:PORT or ws://HOST:PORT/PATH. Repeat
    /// to listen on several at once.
    #[arg(long, default_value = "tcp://127.0.0.1:4506")]
    listen: Vec<String>,
    /// Key file (see `sealrpc keygen`).
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    trace: TraceArgs,
}

pub async fn run(a: MasterArgs) -> Result<(), String> {
    let key = Key::load(&a.key).map_err(|e| e.to_string())?;
    let telemetry = trace::start(Role::Master, &a.trace)?;
    let cfg = ChannelConfig::new(key).with_telemetry(telemetry.clone());
    let router = sealrpc::builtin::register(Router::new());
    let server = Server::bind_all(&a.listen, router, cfg)
        .await
        .map_err(|e| e.to_string())?;
    for url in server.local_urls().map_err(|e| e.to_string())? {
        eprintln!("sealrpc master listening on {url}");
    }
    let result = server
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
