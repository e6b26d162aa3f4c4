//! Tracing flags, the config file, and the TRACEPARENT environment carrier.
use clap::Args;
use sealrpc::context::{self, Extracted, RemoteContext};
use sealrpc::telemetry::config::{resolve, Role, TracingSettings};
use sealrpc::telemetry::Telemetry;
use std::path::PathBuf;

/// Tracing options shared by every command that talks to the network.
#[derive(Args, Clone, Debug, Default)]
pub struct TraceArgs {
    /// TOML config file; its `[tracing]` table is read.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// none, console, file, otlp-http or otlp-grpc. Any but none turns tracing on.
    #[arg(long)]
    pub trace_exporter: Option<String>,
    /// Output file of the `file` exporter (OTLP JSON lines).
    #[arg(long)]
    pub trace_file: Option<PathBuf>,
    /// OTLP endpoint URL.
    #[arg(long)]
    pub trace_endpoint: Option<String>,
    /// always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio.
    #[arg(long)]
    pub trace_sampler: Option<String>,
    /// The sampler's argument (a ratio in [0, 1]).
    #[arg(long)]
    pub trace_sampler_arg: Option<String>,
    /// service.name of this process's spans.
    #[arg(long)]
    pub service_name: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    tracing: TracingSettings,
}

/// Resolves flags > environment > config file > defaults, and starts
/// telemetry when the result says tracing is on.
pub fn start(role: Role, a: &TraceArgs) -> Result<Option<Telemetry>, String> {
    let file = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config {}: {e}", path.display()))?;
            // The error's message and line only: its source excerpt could
            // quote a secret (an OTLP header).
            toml::from_str::<ConfigFile>(&text)
                .map_err(|e| {
                    let line = e.span().map_or(0, |s| {
                        text[..s.start.min(text.len())].lines().count().max(1)
                    });
                    format!("config {}: line {line}: {}", path.display(), e.message())
                })?
                .tracing
        }
        None => TracingSettings::default(),
    };
    let env = TracingSettings::from_process_env().map_err(|e| e.to_string())?;
    let exporter = match &a.trace_exporter {
        Some(s) => Some(
            s.parse()
                .map_err(|e: sealrpc::telemetry::config::ConfigError| e.to_string())?,
        ),
        None => None,
    };
    let cli = TracingSettings {
        exporter,
        file: a.trace_file.clone(),
        endpoint: a.trace_endpoint.clone(),
        sampler: a.trace_sampler.clone(),
        sampler_arg: a.trace_sampler_arg.clone(),
        service_name: a.service_name.clone(),
        ..Default::default()
    };
    let Some(cfg) = resolve(role, &file, &env, &cli).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let telemetry = Telemetry::init(&cfg).map_err(|e| e.to_string())?;
    telemetry.install_global();
    Ok(Some(telemetry))
}

/// The parent named by `TRACEPARENT`/`TRACESTATE`, if set and valid. An
/// invalid value starts a fresh trace, with a warning.
pub fn env_parent() -> Option<RemoteContext> {
    let tp = std::env::var("TRACEPARENT").ok()?;
    let mut carrier = vec![(context::TRACEPARENT.to_owned(), tp)];
    if let Ok(ts) = std::env::var("TRACESTATE") {
        carrier.push((context::TRACESTATE.to_owned(), ts));
    }
    match context::extract(&carrier) {
        Extracted::Valid(remote) => Some(remote),
        Extracted::None => None,
        Extracted::Invalid(e) => {
            eprintln!("warning: ignoring TRACEPARENT ({e}); starting a new trace");
            None
        }
    }
}
