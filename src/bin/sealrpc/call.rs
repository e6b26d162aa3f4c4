//! `sealrpc call`: one call, the result as JSON on stdout.
use super::node::MasterConn;
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::Client;
use sealrpc::telemetry::config::Role;
use std::time::Duration;

#[derive(Args)]
pub struct CallArgs {
    #[command(flatten)]
    to: MasterConn,
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
        let mut cfg = a.to.config(telemetry.clone())?;
        cfg.timeout = timeout;
        let client = Client::connect(&a.to.master, cfg)
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
