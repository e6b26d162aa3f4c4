//! `sealrpc minion`: register with a master and run the jobs published to
//! this minion (the built-in test.* methods) until SIGTERM or Ctrl-C.
//!
//! On either signal it prints `sealrpc minion ID stopping: …` and runs no
//! new job: one that arrives is answered at once with a failed return
//! ("shutting down: the job was not run"). Running jobs finish and return
//! for up to `--grace` seconds; those still running then are stopped and
//! return a failure. Then the spans are flushed and the process exits 0.
use super::master::{grace_period, shutdown_signal};
use super::node::{self, NodeArgs};
use super::trace::{self, TraceArgs};
use clap::Args;
use sealrpc::channel::Router;
use sealrpc::minion::{Minion, MinionOptions};
use sealrpc::telemetry::config::Role;
use sealrpc::telemetry::ConsumerMode;

#[derive(Args)]
pub struct MinionArgs {
    /// The master's address: tcp://, ws:// or zmq://.
    #[arg(long, default_value = "tcp://127.0.0.1:4506")]
    master: String,
    /// This minion's id (A-Z a-z 0-9 . _ -).
    #[arg(long)]
    id: String,
    #[command(flatten)]
    node: NodeArgs,
    /// The master's key fingerprint (SHA-256, hex) to pin. Without it the
    /// first master seen is pinned in PKI_DIR/master.pub (trust on first
    /// use) and never silently replaced. With --pki-dir.
    #[arg(long)]
    master_fingerprint: Option<String>,
    /// Start each job's CONSUMER span as a new trace linked to the
    /// master's PRODUCER span, instead of as its child.
    #[arg(long)]
    link_jobs: bool,
    /// On SIGTERM or Ctrl-C: seconds that running jobs may go on to finish
    /// and return before they are stopped.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    grace: f64,
    #[command(flatten)]
    trace: TraceArgs,
}

pub async fn run(a: MinionArgs) -> Result<(), String> {
    if a.node.pki_dir.is_some() && matches!(a.id.as_str(), "master" | "admin") {
        return Err(format!(
            "a minion may not be called {:?}: that name is the master's own key",
            a.id
        ));
    }
    let grace = grace_period(a.grace)?;
    let mut cfg = a.node.config()?;
    node::connecting(
        &a.node,
        &mut cfg,
        &a.id,
        a.id.as_bytes(),
        a.master_fingerprint.clone(),
    )?;
    let telemetry = trace::start(Role::Minion, &a.trace)?;
    let cfg = cfg.with_telemetry(telemetry.clone());
    let opts = MinionOptions {
        consumer: if a.link_jobs {
            ConsumerMode::Link
        } else {
            ConsumerMode::Child
        },
        grace,
        ..MinionOptions::default()
    };
    let router = sealrpc::builtin::register(Router::new());
    let minion = Minion::new(&a.master, &a.id, router, cfg, opts).map_err(|e| e.to_string())?;
    let mut ready = minion.ready();
    let id = a.id.clone();
    let report = tokio::spawn(async move {
        // Each registration (the first, and after any loss of the master).
        while ready.wait_for(|r| *r).await.is_ok() {
            eprintln!("sealrpc minion {id} ready");
            if ready.wait_for(|r| !*r).await.is_err() {
                break;
            }
        }
    });
    let (id, stopping) = (a.id.clone(), minion.stopped_taking_jobs());
    let announce = tokio::spawn(async move {
        stopping.await;
        eprintln!(
            "sealrpc minion {id} stopping: running no new jobs; \
             running jobs have up to {grace:?}"
        );
    });
    let result = minion
        .run(shutdown_signal())
        .await
        .map_err(|e| e.to_string());
    report.abort();
    let _ = announce.await;
    eprintln!("sealrpc minion {} stopped", a.id);
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    result
}
