//! `sealrpc publish`: publish a job to the minions a target selects and
//! print every return as JSON `{minion_id: result}`; the minions that did
//! not return are named on stderr and make the exit status non-zero.
use super::node::MasterConn;
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::Client;
use sealrpc::job::{self, JobReport, PublishRequest};
use sealrpc::telemetry::config::Role;
use serde_bytes::ByteBuf;
use serde_json::{Map, Value};
use std::time::Duration;

/// Extra time the publish call waits beyond the job's own timeout.
const CALL_MARGIN: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    to: MasterConn,
    /// Which minions: `*`, a list `m1,m2`, or a glob such as `web*`.
    #[arg(long)]
    target: String,
    /// Seconds to collect returns.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The method, e.g. test.ping.
    method: String,
    /// Arguments: JSON where they parse, else strings.
    args: Vec<String>,
    #[command(flatten)]
    trace: TraceArgs,
}

pub async fn run(a: PublishArgs) -> Result<(), String> {
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .ok()
        .filter(|d| !d.is_zero() && *d < Duration::from_secs(86_400 * 365))
        .ok_or("--timeout must be a positive number of seconds")?;
    let telemetry = trace::start(Role::Cli, &a.trace)?;
    let request = PublishRequest {
        target: a.target.clone(),
        method: a.method.clone(),
        body: ByteBuf::from(args_body(&a.args).map_err(|e| e.to_string())?.to_vec()),
        timeout_ms: timeout.as_millis() as u64,
    };
    let work = async {
        let mut cfg = a.to.config(telemetry.clone())?;
        cfg.timeout = timeout + CALL_MARGIN;
        let client = Client::connect(&a.to.master, cfg)
            .await
            .map_err(|e| e.to_string())?;
        client
            .call_value::<_, JobReport>(job::PUBLISH, &request)
            .await
            .map_err(|e| e.to_string())
    };
    let report = match &telemetry {
        Some(t) => {
            let parent = trace::env_parent();
            let name = format!("sealrpc publish {}", a.method);
            t.in_root(&name, parent.as_ref(), work).await
        }
        None => work.await,
    };
    if let Some(t) = &telemetry {
        t.shutdown().await;
    }
    let report = report?;
    print_report(&report)
}

fn print_report(report: &JobReport) -> Result<(), String> {
    let mut out = Map::new();
    let mut failed = Vec::new();
    for (id, r) in &report.returns {
        let value = if r.ok {
            body_json(&r.body).unwrap_or_else(|e| error_value(&e.to_string()))
        } else {
            failed.push(id.as_str());
            error_value(&String::from_utf8_lossy(&r.body))
        };
        out.insert(id.clone(), value);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(out)).map_err(|e| e.to_string())?
    );
    eprintln!("job {}", report.jid);
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
    }
    if !report.missing.is_empty() {
        eprintln!("did not return: {}", report.missing.join(", "));
    }
    for (id, why) in &report.undelivered {
        eprintln!("not sent to {id}: {why}");
    }
    if report.all_ok() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} targeted minions failed or did not return",
            failed.len() + report.missing.len(),
            report.returns.len() + report.missing.len()
        ))
    }
}

fn error_value(message: &str) -> Value {
    let mut m = Map::new();
    m.insert("error".into(), Value::String(message.to_owned()));
    Value::Object(m)
}
