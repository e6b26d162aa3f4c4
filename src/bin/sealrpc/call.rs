//! `sealrpc call`: one call, the result as JSON on stdout.
use super::node::{self, NodeArgs};
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::Client;
use sealrpc::telemetry::config::Role;
use std::time::Duration;

#[derive(Args)]
pub struct CallArgs {
    /// The master's address.
    #[arg(long, default_value = "tcp://127.0.0.1:4506")]
    master: String,
    #[command(flatten)]
    node: NodeArgs,
    /// With --pki-dir: the key pair to use, PKI_DIR/NAME.key (on the
    /// master's host, `admin` is on the master's publisher list).
    #[arg(long, default_value = "admin")]
    as_identity: String,
    /// With --pki-dir: the master's key fingerprint to pin (default: the
    /// key in PKI_DIR/master.pub, or trust on first use).
    #[arg(long)]
    master_fingerprint: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// The method, e.g. test.ping.
    method: String,
    /// Arguments: JSON where they parse, else strings.
    args: Vec<String>,
    #[command(flatten)]
    trace: TraceArgs,
}

pub async fn run(a: CallArgs) -> Result<(), String> {
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or("--timeout must be a positive number of seconds")?;
    let telemetry = trace::start(Role::Cli, &a.trace)?;
    let body = args_body(&a.args).map_err(|e| e.to_string())?;
    let work = async {
        let mut cfg = a.node.config()?.with_telemetry(telemetry.clone());
        node::connecting(
            &a.node,
            &mut cfg,
            &a.as_identity,
            b"",
            a.master_fingerprint.clone(),
        )?;
        cfg.timeout = timeout;
        let client = Client::connect(&a.master, cfg)
            .await
            .map_err(|e| e.to_string())?;
        let reply = client
            .call(&a.method, body)
            .await
            .map_err(|e| e.to_string())?;
        body_json(&reply).map_err(|e| e.to_string())
    };
    let result = match &telemetry {
        Some(t) => {
            let parent = trace::env_parent();
            t.in_root(&format!("sealrpc call {}", a.method), parent.as_ref(), work)
                .await
        }
        None => work.await,
    };
    if let Some(t) = &telemetry {
        t.shutdown().await;
    }
    let value = result?;
    println!(
        "{}",
        serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
    );
    Ok(())
}
