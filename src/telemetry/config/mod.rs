//! Tracing configuration: three layers of optional settings (config file,
//! environment, command line) resolved into one [`TracingConfig`].
//!
//! This module never touches OpenTelemetry types, so it compiles without the
//! `otel` feature. Tracing is opt-in: nothing is exported unless a layer
//! enables it (see [`resolve`]).
mod env;
mod error;
#[cfg(test)]
mod tests;

pub use env::{parse_pairs, percent_decode, TracingSettings};
use env::{validate_headers, G_ENDPOINT, T_ENDPOINT};
pub use error::{ConfigError, TelemetryError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Which sealrpc program is tracing; picks the default `service.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The master (`sealrpc-master`).
    Master,
    /// The command-line client (`sealrpc-cli`).
    Cli,
    /// A minion (`sealrpc-minion`).
    Minion,
    /// The demo program (`sealrpc-demo`).
    Demo,
}

impl Role {
    /// The default `service.name` for this role.
    pub fn default_service_name(self) -> &'static str {
        match self {
            Role::Master => "sealrpc-master",
            Role::Cli => "sealrpc-cli",
            Role::Minion => "sealrpc-minion",
            Role::Demo => "sealrpc-demo",
        }
    }
}

/// Where finished spans go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExporterKind {
    /// No exporter: tracing off.
    None,
    /// One human-readable line per span on stderr.
    Console,
    /// OTLP JSON lines appended to a file (Collector file-exporter format).
    File,
    /// OTLP over HTTP with protobuf bodies (`otlp` is an alias).
    #[serde(alias = "otlp")]
    OtlpHttp,
    /// OTLP over gRPC.
    OtlpGrpc,
}

impl ExporterKind {
    /// The canonical name, as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            ExporterKind::None => "none",
            ExporterKind::Console => "console",
            ExporterKind::File => "file",
            ExporterKind::OtlpHttp => "otlp-http",
            ExporterKind::OtlpGrpc => "otlp-grpc",
        }
    }

    fn parse_for(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(ExporterKind::None),
            "console" => Ok(ExporterKind::Console),
            "file" => Ok(ExporterKind::File),
            "otlp" | "otlp-http" => Ok(ExporterKind::OtlpHttp),
            "otlp-grpc" => Ok(ExporterKind::OtlpGrpc),
            _ => Err(ConfigError::UnknownExporter {
                key: key.into(),
                value: value.into(),
            }),
        }
    }
}

impl std::fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExporterKind {
    type Err = ConfigError;
    /// Accepts `none`, `console`, `file`, `otlp-http`, `otlp-grpc` and `otlp` (= otlp-http).
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Self::parse_for("exporter", s)
    }
}

/// A sampler, named as in `OTEL_TRACES_SAMPLER`.
#[derive(Clone, Debug, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with a ratio in [0, 1].
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default).
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with a ratio in [0, 1].
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    /// Parses a spec sampler name (case-insensitive) and its optional argument.
    /// The argument only matters for the ratio samplers (default 1.0) and is
    /// ignored otherwise. Errors name the setting as "sampler"/"sampler_arg".
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Self, ConfigError> {
        Self::parse_keyed(("sampler", name), arg.map(|a| ("sampler_arg", a)))
    }

    fn parse_keyed(name: (&str, &str), arg: Option<(&str, &str)>) -> Result<Self, ConfigError> {
        let ratio = || -> Result<f64, ConfigError> {
            let Some((key, raw)) = arg else {
                return Ok(1.0);
            };
            match raw.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::InvalidSamplerArg {
                    key: key.into(),
                    value: raw.into(),
                }),
            }
        };
        Ok(match name.1.trim().to_ascii_lowercase().as_str() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio()?),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio()?),
            _ => {
                let (key, value) = (name.0.into(), name.1.into());
                return Err(ConfigError::UnknownSampler { key, value });
            }
        })
    }
}

/// Fully resolved tracing configuration. `resolve` returning `None` means off.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingConfig {
    /// The exporter; never [`ExporterKind::None`].
    pub exporter: ExporterKind,
    /// OTLP endpoint, ready to use (empty for console/file unless one was set).
    pub endpoint: String,
    /// OTLP headers / gRPC metadata.
    pub headers: BTreeMap<String, String>,
    /// Carried as given. Plaintext `http://` endpoints are always allowed;
    /// skipping TLS verification is not supported. Its only effect: an
    /// otlp-grpc endpoint without a scheme gets `http://` (true) or `https://`.
    pub insecure: bool,
    /// Export timeout (default 10 s).
    pub timeout: Duration,
    /// File exporter output (required for [`ExporterKind::File`]).
    pub file: Option<PathBuf>,
    /// Sampler (default `parentbased_always_on`).
    pub sampler: SamplerConfig,
    /// `service.name` (default per [`Role`]).
    pub service_name: String,
    /// Extra resource attributes, never containing `service.name`.
    pub resource: BTreeMap<String, String>,
}

/// Default OTLP/HTTP traces endpoint.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// Default OTLP/gRPC endpoint.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Default export timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq)]
enum Layer {
    Cli,
    Env,
    File,
}

impl Layer {
    /// Name of `field` in this layer, for error messages.
    fn key(self, field: &str, s: &TracingSettings) -> String {
        match (self, field) {
            (Layer::Cli, _) => format!("command line: {field}"),
            (Layer::File, _) => format!("[tracing].{field}"),
            (Layer::Env, "endpoint") if s.endpoint_is_generic => G_ENDPOINT.into(),
            (Layer::Env, "endpoint") => T_ENDPOINT.into(),
            (Layer::Env, "sampler") => "OTEL_TRACES_SAMPLER".into(),
            (Layer::Env, "sampler_arg") => "OTEL_TRACES_SAMPLER_ARG".into(),
            (Layer::Env, "service_name") => "OTEL_SERVICE_NAME".into(),
            (Layer::Env, _) => format!("environment: {field}"),
        }
    }
}

/// Resolves the three layers into one configuration; `Ok(None)` = tracing off.
///
/// Every field: CLI > environment > config file > default; `headers` and
/// `resource` merge per key in that order.
///
/// On/off: the highest layer that says anything decides. A layer says
/// *off* with `enabled = false` or exporter `none` (checked first), and *on*
/// with `enabled = true` or any other exporter. So `OTEL_SDK_DISABLED=true`
/// (env `enabled = Some(false)`) turns tracing off whatever the config file
/// or the other `OTEL_*` variables say, **except** when the command line
/// explicitly sets an exporter other than `none` (or `enabled = true`): an
/// explicit flag is the user's latest word. When on, the exporter is the
/// highest-precedence one that is not `none`, else otlp-http. When off,
/// nothing else is validated.
///
/// Endpoints: otlp-http defaults to [`DEFAULT_HTTP_ENDPOINT`], otlp-grpc to
/// [`DEFAULT_GRPC_ENDPOINT`]; `OTEL_EXPORTER_OTLP_ENDPOINT` gets
/// `/v1/traces` appended for otlp-http, every other endpoint is used as is.
pub fn resolve(
    role: Role,
    file: &TracingSettings,
    env: &TracingSettings,
    cli: &TracingSettings,
) -> Result<Option<TracingConfig>, ConfigError> {
    let layers = [(Layer::Cli, cli), (Layer::Env, env), (Layer::File, file)];
    let opinion = |s: &TracingSettings| match (s.enabled, s.exporter) {
        (Some(false), _) | (_, Some(ExporterKind::None)) => Some(false),
        (Some(true), _) | (_, Some(_)) => Some(true),
        _ => None,
    };
    if !layers.iter().find_map(|(_, s)| opinion(s)).unwrap_or(false) {
        return Ok(None);
    }
    let exporter = layers
        .iter()
        .find_map(|(_, s)| s.exporter.filter(|e| *e != ExporterKind::None))
        .unwrap_or(ExporterKind::OtlpHttp);
    let endpoint = match layers
        .iter()
        .find_map(|(l, s)| s.endpoint.as_ref().map(|e| (*l, *s, e.trim())))
    {
        None => match exporter {
            ExporterKind::OtlpHttp => DEFAULT_HTTP_ENDPOINT.to_owned(),
            ExporterKind::OtlpGrpc => DEFAULT_GRPC_ENDPOINT.to_owned(),
            _ => String::new(),
        },
        Some((layer, s, raw)) => {
            let key = layer.key("endpoint", s);
            let generic = layer == Layer::Env && s.endpoint_is_generic;
            resolve_endpoint(exporter, &key, raw, generic, insecure_of(&layers))?
        }
    };
    let mut headers = BTreeMap::new();
    let mut resource = BTreeMap::new();
    for (layer, s) in layers.iter().rev() {
        if let Some(h) = &s.headers {
            validate_headers(&layer.key("headers", s), h)?;
            headers.extend(h.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(r) = &s.resource {
            resource.extend(r.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let service_name = layers.iter().find_map(|(l, s)| {
        let key = l.key("service_name", s);
        let name = s
            .service_name
            .as_ref()
            .or_else(|| s.resource.as_ref()?.get("service.name"));
        name.map(|n| (key, n.trim().to_owned()))
    });
    let service_name = match service_name {
        Some((key, n)) if n.is_empty() => return Err(ConfigError::Empty { key }),
        Some((_, n)) => n,
        None => role.default_service_name().to_owned(),
    };
    resource.remove("service.name");
    let timeout = match layers
        .iter()
        .find_map(|(l, s)| s.timeout_ms.map(|t| (l.key("timeout_ms", s), t)))
    {
        Some((key, 0)) => {
            return Err(ConfigError::InvalidTimeout {
                key,
                value: "0".into(),
            })
        }
        Some((_, ms)) => Duration::from_millis(ms),
        None => DEFAULT_TIMEOUT,
    };
    let file_path = layers.iter().find_map(|(_, s)| s.file.clone());
    if exporter == ExporterKind::File && file_path.is_none() {
        return Err(ConfigError::FileExporterNeedsPath);
    }
    let name = layers
        .iter()
        .find_map(|(l, s)| Some((l.key("sampler", s), s.sampler.as_deref()?)));
    let arg = layers
        .iter()
        .find_map(|(l, s)| Some((l.key("sampler_arg", s), s.sampler_arg.as_deref()?)));
    let sampler = match name {
        None => SamplerConfig::ParentBasedAlwaysOn,
        Some((nk, n)) => {
            SamplerConfig::parse_keyed((&nk, n), arg.as_ref().map(|(k, a)| (k.as_str(), *a)))?
        }
    };
    Ok(Some(TracingConfig {
        exporter,
        endpoint,
        headers,
        insecure: insecure_of(&layers),
        timeout,
        file: file_path,
        sampler,
        service_name,
        resource,
    }))
}

fn insecure_of(layers: &[(Layer, &TracingSettings); 3]) -> bool {
    layers.iter().find_map(|(_, s)| s.insecure).unwrap_or(false)
}

fn resolve_endpoint(
    exporter: ExporterKind,
    key: &str,
    raw: &str,
    generic: bool,
    insecure: bool,
) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::InvalidEndpoint {
        key: key.into(),
        value: raw.into(),
        reason,
    };
    if raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must be a non-empty URL without spaces"));
    }
    let lower = raw.to_ascii_lowercase();
    let has_scheme = lower.starts_with("http://") || lower.starts_with("https://");
    match exporter {
        ExporterKind::OtlpHttp if !has_scheme => {
            Err(bad("otlp-http needs an http:// or https:// URL"))
        }
        ExporterKind::OtlpHttp if generic && !raw.trim_end_matches('/').ends_with("/v1/traces") => {
            Ok(format!("{}/v1/traces", raw.trim_end_matches('/')))
        }
        ExporterKind::OtlpGrpc if raw.contains("://") && !has_scheme => Err(bad(
            "otlp-grpc needs an http:// or https:// URL or host:port",
        )),
        ExporterKind::OtlpGrpc if !has_scheme => Ok(format!(
            "{}://{raw}",
            if insecure { "http" } else { "https" }
        )),
        _ => Ok(raw.to_owned()),
    }
}
