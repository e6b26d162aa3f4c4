//! Tracing configuration: three layers of optional settings (config file,
//! environment, command line) resolved into one [`TracingConfig`].
//!
//! This module never touches OpenTelemetry types, so it compiles without the
//! `otel` feature. Tracing is opt-in: nothing is exported unless a layer
//! enables it (see [`resolve`]).
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

/// A bad configuration value. Every variant names the offending key or
/// environment variable (`key`) and, where there is one, the value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Unknown exporter name.
    #[error("{key}: unknown exporter `{value}` (valid: none, console, file, otlp-http, otlp-grpc; `otlp` means otlp-http)")]
    UnknownExporter { key: String, value: String },
    /// More than one exporter in `OTEL_TRACES_EXPORTER`.
    #[error("{key}: `{value}` lists several exporters; sealrpc supports exactly one")]
    MultipleExporters { key: String, value: String },
    /// OTLP protocol we cannot speak (`http/json`) or do not know.
    #[error("{key}: unsupported OTLP protocol `{value}` (supported: grpc, http/protobuf)")]
    UnsupportedProtocol { key: String, value: String },
    /// Unknown sampler name.
    #[error("{key}: unknown sampler `{value}` (valid: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)")]
    UnknownSampler { key: String, value: String },
    /// Sampler ratio that is not a number in [0, 1].
    #[error("{key}: invalid sampler ratio `{value}`: expected a number between 0 and 1")]
    InvalidSamplerArg { key: String, value: String },
    /// A `k=v,k=v` list entry without `=` or with an empty key.
    #[error("{key}: malformed entry `{entry}`: expected key=value")]
    MalformedPair { key: String, entry: String },
    /// Bad `%XX` escape, or decoded bytes that are not UTF-8.
    #[error("{key}: invalid percent-encoding in `{value}`")]
    BadPercentEncoding { key: String, value: String },
    /// Header name or value that cannot be sent.
    #[error("{key}: invalid header `{name}` (names must be HTTP tokens, values printable ASCII)")]
    InvalidHeader { key: String, name: String },
    /// Not `true`/`false`.
    #[error("{key}: invalid boolean `{value}` (expected true or false)")]
    InvalidBool { key: String, value: String },
    /// Not a positive number of milliseconds.
    #[error("{key}: invalid timeout `{value}` (expected a positive number of milliseconds)")]
    InvalidTimeout { key: String, value: String },
    /// Endpoint that is empty or, for otlp-http, not an http(s) URL.
    #[error("{key}: invalid endpoint `{value}`: {reason}")]
    InvalidEndpoint {
        key: String,
        value: String,
        reason: &'static str,
    },
    /// An empty value where one is required (e.g. service name).
    #[error("{key}: must not be empty")]
    Empty { key: String },
    /// The file exporter was chosen without a `file` path.
    #[error("file exporter needs a path (set `file` in [tracing] or on the command line)")]
    FileExporterNeedsPath,
}

/// Failure to set up tracing. Exists with or without the `otel` feature.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The configuration did not resolve.
    #[error("tracing configuration: {0}")]
    Config(#[from] ConfigError),
    /// An exporter (or its file, client, runtime) could not be built.
    #[error("building trace exporter: {0}")]
    Build(String),
}

/// One layer of settings: every field optional. Deserializes from the
/// `[tracing]` table of the TOML config file (unknown keys are rejected);
/// [`TracingSettings::from_env`] builds the environment layer; the CLI fills
/// in the command-line layer (use `..Default::default()`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSettings {
    /// Turn tracing on (`true`) or off (`false`).
    pub enabled: Option<bool>,
    /// Exporter; any value but `none` also turns tracing on.
    pub exporter: Option<ExporterKind>,
    /// OTLP endpoint. Used as is (for otlp-http the full URL incl. `/v1/traces`).
    pub endpoint: Option<String>,
    /// Extra OTLP headers (gRPC metadata for otlp-grpc). Merged per key across layers.
    pub headers: Option<BTreeMap<String, String>>,
    /// For otlp-grpc endpoints without a scheme: `true` means `http://`, else `https://`.
    pub insecure: Option<bool>,
    /// Export timeout in milliseconds (must be > 0).
    pub timeout_ms: Option<u64>,
    /// Output file of the file exporter.
    pub file: Option<PathBuf>,
    /// Sampler name as in `OTEL_TRACES_SAMPLER`.
    pub sampler: Option<String>,
    /// Sampler argument (the ratio for the ratio samplers).
    pub sampler_arg: Option<String>,
    /// `service.name`; wins over a `service.name` inside `resource` of the same layer.
    pub service_name: Option<String>,
    /// Extra resource attributes. Merged per key across layers.
    pub resource: Option<BTreeMap<String, String>>,
    /// Set by [`from_env`](Self::from_env) when `endpoint` came from the generic
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL that gets `/v1/traces`
    /// appended for otlp-http. Not a config-file key.
    #[serde(skip)]
    pub endpoint_is_generic: bool,
}

const T_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const G_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

impl TracingSettings {
    /// Builds the environment layer from the standard `OTEL_*` variables,
    /// reading them through `get` (empty values count as unset). See the
    /// module docs of each field; notably `OTEL_SDK_DISABLED=true` sets
    /// `enabled = Some(false)`, and only `OTEL_TRACES_EXPORTER` can turn
    /// tracing on: OTLP endpoint/header variables alone do not.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<TracingSettings, ConfigError> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let traces_or = |t: &str, g: &'static str| {
            let name = format!("OTEL_EXPORTER_OTLP_TRACES_{t}");
            var(&name)
                .map(|v| (name, v))
                .or_else(|| var(g).map(|v| (g.to_owned(), v)))
        };
        let mut s = TracingSettings::default();
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            s.enabled = Some(false);
        }
        if let Some(raw) = var("OTEL_TRACES_EXPORTER") {
            s.exporter = Some(env_exporter(
                &raw,
                traces_or("PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
            )?);
        }
        if let Some(v) = var(T_ENDPOINT) {
            s.endpoint = Some(v);
        } else if let Some(v) = var(G_ENDPOINT) {
            (s.endpoint, s.endpoint_is_generic) = (Some(v), true);
        }
        if let Some((key, raw)) = traces_or("HEADERS", "OTEL_EXPORTER_OTLP_HEADERS") {
            let headers = parse_pairs(&key, &raw)?;
            validate_headers(&key, &headers)?;
            s.headers = Some(headers);
        }
        if let Some((key, raw)) = traces_or("INSECURE", "OTEL_EXPORTER_OTLP_INSECURE") {
            s.insecure = Some(match raw.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(ConfigError::InvalidBool { key, value: raw }),
            });
        }
        if let Some((key, raw)) = traces_or("TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT") {
            match raw.parse::<u64>() {
                Ok(ms) if ms > 0 => s.timeout_ms = Some(ms),
                _ => return Err(ConfigError::InvalidTimeout { key, value: raw }),
            }
        }
        s.sampler = var("OTEL_TRACES_SAMPLER");
        s.sampler_arg = var("OTEL_TRACES_SAMPLER_ARG");
        if let Some(raw) = var("OTEL_RESOURCE_ATTRIBUTES") {
            s.resource = Some(parse_pairs("OTEL_RESOURCE_ATTRIBUTES", &raw)?);
        }
        s.service_name = var("OTEL_SERVICE_NAME");
        Ok(s)
    }

    /// [`from_env`](Self::from_env) over the process environment.
    pub fn from_process_env() -> Result<TracingSettings, ConfigError> {
        Self::from_env(|k| std::env::var(k).ok())
    }
}

/// `OTEL_TRACES_EXPORTER` (+ protocol for `otlp`) to an [`ExporterKind`].
fn env_exporter(
    raw: &str,
    protocol: Option<(String, String)>,
) -> Result<ExporterKind, ConfigError> {
    let key = "OTEL_TRACES_EXPORTER";
    let mut names: Vec<String> = raw
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    names.retain(|n| !n.is_empty());
    names.dedup();
    let [name] = names.as_slice() else {
        return Err(ConfigError::MultipleExporters {
            key: key.into(),
            value: raw.into(),
        });
    };
    if name != "otlp" {
        return ExporterKind::parse_for(key, name);
    }
    match protocol {
        None => Ok(ExporterKind::OtlpHttp),
        Some((_, p)) if p == "grpc" => Ok(ExporterKind::OtlpGrpc),
        Some((_, p)) if p == "http/protobuf" => Ok(ExporterKind::OtlpHttp),
        Some((key, value)) => Err(ConfigError::UnsupportedProtocol { key, value }),
    }
}

/// Parses `k=v,k=v` (W3C-baggage-like): entries trimmed, empty entries
/// skipped, values percent-decoded. Later duplicates win.
pub fn parse_pairs(key: &str, raw: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let malformed = || ConfigError::MalformedPair {
            key: key.into(),
            entry: entry.into(),
        };
        let (k, v) = entry.split_once('=').ok_or_else(malformed)?;
        let k = k.trim();
        if k.is_empty() {
            return Err(malformed());
        }
        out.insert(k.to_owned(), percent_decode(key, v.trim())?);
    }
    Ok(out)
}

/// Decodes `%XX` escapes; anything else is kept. Result must be UTF-8.
pub fn percent_decode(key: &str, value: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadPercentEncoding {
        key: key.into(),
        value: value.into(),
    };
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn validate_headers(key: &str, headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let value_ok = |c: char| c == '\t' || (c.is_ascii() && !c.is_ascii_control());
    for (name, value) in headers {
        if name.is_empty() || !name.chars().all(token) || !value.chars().all(value_ok) {
            return Err(ConfigError::InvalidHeader {
                key: key.into(),
                name: name.clone(),
            });
        }
    }
    Ok(())
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
/// `resource` merge per key in that order. On/off: the highest layer that
/// says anything decides. A layer says *off* with `enabled = false`
/// (`OTEL_SDK_DISABLED=true` in the environment) or exporter `none`, and
/// *on* with `enabled = true` or another exporter. Hence the one exception
/// to "env beats file": `OTEL_SDK_DISABLED=true` turns tracing off even if
/// the config file enables it, but a command-line exporter other than
/// `none` (the user's latest word) turns it back on. When on, the exporter
/// is the highest one that is not `none`, else otlp-http.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<TracingSettings, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TracingSettings::from_env(|k| vars.get(k).cloned())
    }
    fn on(s: &TracingSettings) -> TracingSettings {
        TracingSettings {
            exporter: Some(ExporterKind::OtlpHttp),
            ..s.clone()
        }
    }
    fn res(
        file: &TracingSettings,
        env: &TracingSettings,
        cli: &TracingSettings,
    ) -> Option<TracingConfig> {
        resolve(Role::Minion, file, env, cli).expect("resolves")
    }
    fn d() -> TracingSettings {
        TracingSettings::default()
    }

    #[test]
    fn off_by_default_and_defaults_when_on() {
        assert_eq!(res(&d(), &d(), &d()), None);
        let only_endpoint = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]).expect("env");
        assert_eq!(
            res(&d(), &only_endpoint, &d()),
            None,
            "exporter-ish vars do not enable"
        );
        let c = res(
            &TracingSettings {
                enabled: Some(true),
                ..d()
            },
            &d(),
            &d(),
        )
        .expect("on");
        assert_eq!(c.exporter, ExporterKind::OtlpHttp);
        assert_eq!(c.endpoint, DEFAULT_HTTP_ENDPOINT);
        assert_eq!(
            (c.timeout, c.insecure, c.sampler),
            (DEFAULT_TIMEOUT, false, SamplerConfig::ParentBasedAlwaysOn)
        );
        assert_eq!(c.service_name, "sealrpc-minion");
        let g = res(
            &d(),
            &d(),
            &TracingSettings {
                exporter: Some(ExporterKind::OtlpGrpc),
                ..d()
            },
        );
        assert_eq!(g.expect("on").endpoint, DEFAULT_GRPC_ENDPOINT);
        assert_eq!(Role::Master.default_service_name(), "sealrpc-master");
    }

    #[test]
    fn precedence_cli_env_file_default() {
        let layer = |name: &str, ms: u64, sampler: &str| TracingSettings {
            endpoint: Some(format!("http://{name}:4318/v1/traces")),
            timeout_ms: Some(ms),
            sampler: Some(sampler.into()),
            service_name: Some(name.into()),
            headers: Some(BTreeMap::from([
                ("h".into(), name.into()),
                (name.into(), "1".into()),
            ])),
            ..d()
        };
        let (f, e, c) = (
            on(&layer("file", 1, "always_on")),
            layer("env", 2, "always_off"),
            layer("cli", 3, "traceidratio"),
        );
        let r = res(&f, &e, &c).expect("on");
        assert_eq!(
            (r.endpoint.as_str(), r.timeout, &r.service_name[..]),
            ("http://cli:4318/v1/traces", Duration::from_millis(3), "cli")
        );
        assert_eq!(r.sampler, SamplerConfig::TraceIdRatio(1.0));
        assert_eq!(r.headers.len(), 4);
        assert_eq!(r.headers["h"], "cli");
        let r = res(&f, &e, &d()).expect("on");
        assert_eq!(
            (r.endpoint.as_str(), r.timeout, r.sampler),
            (
                "http://env:4318/v1/traces",
                Duration::from_millis(2),
                SamplerConfig::AlwaysOff
            )
        );
        let r = res(&f, &d(), &d()).expect("on");
        assert_eq!(
            (r.service_name.as_str(), r.headers["h"].as_str()),
            ("file", "file")
        );
        // Exporter: CLI > env > file.
        let exp = |k| TracingSettings {
            exporter: Some(k),
            ..d()
        };
        let pick = |f, e, c| res(&f, &e, &c).map(|r| r.exporter);
        assert_eq!(
            pick(exp(ExporterKind::Console), exp(ExporterKind::OtlpGrpc), d()),
            Some(ExporterKind::OtlpGrpc)
        );
        assert_eq!(
            pick(d(), exp(ExporterKind::OtlpGrpc), exp(ExporterKind::Console)),
            Some(ExporterKind::Console)
        );
        assert_eq!(
            pick(exp(ExporterKind::Console), exp(ExporterKind::None), d()),
            None
        );
        assert_eq!(
            pick(exp(ExporterKind::Console), d(), exp(ExporterKind::None)),
            None
        );
    }

    #[test]
    fn sdk_disabled_both_ways() {
        let disabled = env(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "console"),
        ])
        .expect("env");
        assert_eq!(disabled.enabled, Some(false));
        let file_on = TracingSettings {
            exporter: Some(ExporterKind::Console),
            ..d()
        };
        assert_eq!(
            res(&file_on, &disabled, &d()),
            None,
            "disabled beats file and env exporter"
        );
        let cli = TracingSettings {
            exporter: Some(ExporterKind::File),
            file: Some("t.jsonl".into()),
            ..d()
        };
        assert_eq!(
            res(&d(), &disabled, &cli).map(|c| c.exporter),
            Some(ExporterKind::File)
        );
        let cli_none = TracingSettings {
            exporter: Some(ExporterKind::None),
            ..d()
        };
        assert_eq!(res(&file_on, &disabled, &cli_none), None);
        for v in ["false", "0", "yes"] {
            let e = env(&[
                ("OTEL_SDK_DISABLED", v),
                ("OTEL_TRACES_EXPORTER", "console"),
            ])
            .expect("env");
            assert_eq!(e.enabled, None);
            assert_eq!(
                res(&d(), &e, &d()).map(|c| c.exporter),
                Some(ExporterKind::Console)
            );
        }
    }

    #[test]
    fn traces_exporter_and_protocol() {
        let exp = |vars: &[(&str, &str)]| env(vars).map(|s| s.exporter);
        let x = "OTEL_TRACES_EXPORTER";
        assert_eq!(exp(&[(x, "otlp")]), Ok(Some(ExporterKind::OtlpHttp)));
        assert_eq!(
            exp(&[(x, "otlp"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
            Ok(Some(ExporterKind::OtlpGrpc))
        );
        let both = [
            (x, "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ];
        assert_eq!(exp(&both), Ok(Some(ExporterKind::OtlpHttp)));
        let json = exp(&[
            (x, "otlp"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert!(
            matches!(&json, ConfigError::UnsupportedProtocol { key, .. } if key == "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        );
        assert_eq!(
            exp(&[(x, "console"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
            Ok(Some(ExporterKind::Console))
        );
        assert_eq!(exp(&[(x, "none")]), Ok(Some(ExporterKind::None)));
        assert_eq!(exp(&[(x, " File ")]), Ok(Some(ExporterKind::File)));
        assert_eq!(exp(&[(x, "")]), Ok(None));
        assert!(matches!(
            exp(&[(x, "zipkin")]),
            Err(ConfigError::UnknownExporter { .. })
        ));
        assert!(matches!(
            exp(&[(x, "otlp,console")]),
            Err(ConfigError::MultipleExporters { .. })
        ));
        let err = "jaeger".parse::<ExporterKind>().unwrap_err().to_string();
        assert!(err.contains("jaeger") && err.contains("otlp-grpc"), "{err}");
        assert_eq!("otlp".parse(), Ok(ExporterKind::OtlpHttp));
        assert_eq!("OTLP-GRPC".parse(), Ok(ExporterKind::OtlpGrpc));
    }

    #[test]
    fn generic_vs_traces_endpoint() {
        let g = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let ep = |vars: &[(&str, &str)], k| {
            let e = env(vars).expect("env");
            res(
                &d(),
                &e,
                &TracingSettings {
                    exporter: Some(k),
                    ..d()
                },
            )
            .map(|c| c.endpoint)
        };
        let http = ExporterKind::OtlpHttp;
        assert_eq!(
            ep(&[(g, "http://c:4318")], http).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            ep(&[(g, "http://c:4318/")], http).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            ep(&[(g, "http://c/v1/traces")], http).as_deref(),
            Some("http://c/v1/traces")
        );
        assert_eq!(
            ep(&[(g, "http://c:4317")], ExporterKind::OtlpGrpc).as_deref(),
            Some("http://c:4317")
        );
        let both = [
            (g, "http://gen:4318"),
            (T_ENDPOINT, "http://sig:4318/custom"),
        ];
        assert_eq!(ep(&both, http).as_deref(), Some("http://sig:4318/custom"));
        assert_eq!(
            ep(&[(T_ENDPOINT, "collector:4317")], ExporterKind::OtlpGrpc).as_deref(),
            Some("https://collector:4317")
        );
        let insecure = [
            (T_ENDPOINT, "collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ];
        assert_eq!(
            ep(&insecure, ExporterKind::OtlpGrpc).as_deref(),
            Some("http://collector:4317")
        );
        let e = env(&[(T_ENDPOINT, "collector:4318")]).expect("env");
        let err = resolve(Role::Cli, &d(), &e, &on(&d())).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidEndpoint { key, .. } if key == T_ENDPOINT),
            "{err}"
        );
    }

    #[test]
    fn headers_and_resource_parsing() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "ignored=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                " api-key = a%20b%2Cc , x=%7E,,",
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,deployment.environment.name=prod%2F%E2%9C%93",
            ),
        ])
        .expect("env");
        let h = e.headers.clone().expect("headers");
        assert_eq!(
            (h.len(), h["api-key"].as_str(), h["x"].as_str()),
            (2, "a b,c", "~")
        );
        let r = res(&d(), &e, &on(&d())).expect("on");
        assert_eq!(r.service_name, "from-attrs");
        assert_eq!(
            r.resource,
            BTreeMap::from([("deployment.environment.name".into(), "prod/✓".into())])
        );
        let e = env(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=a"),
            ("OTEL_SERVICE_NAME", "b"),
        ])
        .expect("env");
        assert_eq!(res(&d(), &e, &on(&d())).expect("on").service_name, "b");
        let bad = |k: &str, v: &str| env(&[(k, v)]).unwrap_err();
        let (h, ra) = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_RESOURCE_ATTRIBUTES");
        assert!(
            matches!(bad(h, "novalue"), ConfigError::MalformedPair { entry, .. } if entry == "novalue")
        );
        assert!(matches!(bad(ra, "=v"), ConfigError::MalformedPair { .. }));
        assert!(matches!(
            bad(ra, "k=%zz"),
            ConfigError::BadPercentEncoding { .. }
        ));
        assert!(matches!(
            bad(ra, "k=%4"),
            ConfigError::BadPercentEncoding { .. }
        ));
        assert!(matches!(
            bad(ra, "k=%ff%fe"),
            ConfigError::BadPercentEncoding { .. }
        ));
        assert!(matches!(
            bad(h, "bad name=v"),
            ConfigError::InvalidHeader { .. }
        ));
        assert!(matches!(
            bad(h, "k=a%0Ab"),
            ConfigError::InvalidHeader { .. }
        ));
        assert!(
            matches!(bad(h, "k=%E2%9C%93"), ConfigError::InvalidHeader { .. }),
            "non-ASCII"
        );
        assert!(matches!(
            bad("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ConfigError::InvalidTimeout { .. }
        ));
        assert!(matches!(
            bad("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"),
            ConfigError::InvalidTimeout { .. }
        ));
        assert!(matches!(
            bad("OTEL_EXPORTER_OTLP_INSECURE", "maybe"),
            ConfigError::InvalidBool { .. }
        ));
        let t = env(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
        ]);
        assert_eq!(t.expect("env").timeout_ms, Some(250));
        // Never panics on odd input.
        for v in [
            "%",
            "%%",
            "=",
            ",",
            "a=b=c",
            "é=%C3%A9",
            "\u{0}=\u{0}",
            "k=%E2%9C",
        ] {
            let _ = env(&[
                (h, v),
                (ra, v),
                ("OTEL_TRACES_SAMPLER_ARG", v),
                (T_ENDPOINT, v),
            ]);
        }
    }

    #[test]
    fn samplers() {
        let p = |n: &str, a: Option<&str>| SamplerConfig::parse(n, a);
        assert_eq!(p("always_on", Some("junk")), Ok(SamplerConfig::AlwaysOn));
        assert_eq!(p("always_off", None), Ok(SamplerConfig::AlwaysOff));
        assert_eq!(
            p("traceidratio", Some("0.25")),
            Ok(SamplerConfig::TraceIdRatio(0.25))
        );
        assert_eq!(
            p("traceidratio", None),
            Ok(SamplerConfig::TraceIdRatio(1.0))
        );
        assert_eq!(
            p("ParentBased_Always_On", None),
            Ok(SamplerConfig::ParentBasedAlwaysOn)
        );
        assert_eq!(
            p("parentbased_always_off", None),
            Ok(SamplerConfig::ParentBasedAlwaysOff)
        );
        assert_eq!(
            p("parentbased_traceidratio", Some("0")),
            Ok(SamplerConfig::ParentBasedTraceIdRatio(0.0))
        );
        for arg in ["1.5", "-0.1", "NaN", "inf", "half", ""] {
            assert!(
                matches!(
                    p("traceidratio", Some(arg)),
                    Err(ConfigError::InvalidSamplerArg { .. })
                ),
                "{arg}"
            );
        }
        assert!(matches!(
            p("jaeger_remote", None),
            Err(ConfigError::UnknownSampler { .. })
        ));
        let e = env(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ])
        .expect("env");
        let err = resolve(Role::Cli, &d(), &e, &on(&d())).unwrap_err();
        assert!(
            err.to_string().contains("OTEL_TRACES_SAMPLER_ARG") && err.to_string().contains('2'),
            "{err}"
        );
        let file = TracingSettings {
            sampler: Some("bogus".into()),
            ..on(&d())
        };
        let err = resolve(Role::Cli, &file, &d(), &d())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[tracing].sampler") && err.contains("bogus"),
            "{err}"
        );
    }

    #[test]
    fn file_exporter_needs_path_and_toml_layer() {
        let f = TracingSettings {
            exporter: Some(ExporterKind::File),
            ..d()
        };
        assert_eq!(
            resolve(Role::Demo, &f, &d(), &d()),
            Err(ConfigError::FileExporterNeedsPath)
        );
        let toml_text = r#"
            exporter = "otlp-grpc"
            endpoint = "collector:4317"
            insecure = true
            timeout_ms = 2500
            sampler = "traceidratio"
            sampler_arg = "0.1"
            headers = { authorization = "Bearer x" }
            resource = { "deployment.environment.name" = "staging" }
        "#;
        let s: TracingSettings = toml::from_str(toml_text).expect("toml");
        let r = res(&s, &d(), &d()).expect("on");
        assert_eq!(
            (r.exporter, r.endpoint.as_str()),
            (ExporterKind::OtlpGrpc, "http://collector:4317")
        );
        assert_eq!(
            (r.timeout, r.sampler),
            (
                Duration::from_millis(2500),
                SamplerConfig::TraceIdRatio(0.1)
            )
        );
        assert!(toml::from_str::<TracingSettings>("exporter = \"otlp\"").is_ok());
        assert!(toml::from_str::<TracingSettings>("bogus = 1").is_err());
        assert!(toml::from_str::<TracingSettings>("endpoint_is_generic = true").is_err());
        assert!(toml::from_str::<TracingSettings>("exporter = \"jaeger\"").is_err());
        let zero = TracingSettings {
            timeout_ms: Some(0),
            ..on(&d())
        };
        assert!(matches!(
            resolve(Role::Cli, &d(), &d(), &zero),
            Err(ConfigError::InvalidTimeout { .. })
        ));
        let empty = TracingSettings {
            service_name: Some(" ".into()),
            ..on(&d())
        };
        assert!(matches!(
            resolve(Role::Cli, &empty, &d(), &d()),
            Err(ConfigError::Empty { .. })
        ));
    }
}
