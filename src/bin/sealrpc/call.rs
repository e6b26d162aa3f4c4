//! `sealrpc call`: one call, the result as JSON on stdout.
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::{ChannelConfig, Client};
use sealrpc::keys::Key;
use sealrpc::telemetry::config::Role;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct CallArgs {
    /// The master's address.
    #[arg(long, default_value = "tcp://127.0.0.1:4506")]
    master: String,
    /// Key file (see `sealrpc keygen`).
    #[arg(long)]
    key: PathBuf,
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
    let key = Key::load(&a.key).map_err(|e| e.to_string())?;
    let telemetry = trace::start(Role::Cli, &a.trace)?;
    let body = args_body(&a.args).map_err(|e| e.to_string())?;
    let work = async {
        let mut cfg = ChannelConfig::new(key).with_telemetry(telemetry.clone());
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
