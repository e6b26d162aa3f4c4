//! The settings layers: the `[tracing]` table of the config file and the
//! standard `OTEL_*` environment variables.
use super::{ConfigError, ExporterKind};
use std::collections::BTreeMap;
use std::path::PathBuf;

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

pub(super) const T_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub(super) const G_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

impl TracingSettings {
    /// Builds the environment layer from the standard `OTEL_*` variables,
    /// read through `get` (values trimmed; empty counts as unset):
    /// `OTEL_SDK_DISABLED` (`true`, any case, sets `enabled = Some(false)`),
    /// `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`, our `file`; `otlp`
    /// maps by `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: `grpc`, or
    /// `http/protobuf` = the default; `http/json` is an error),
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` (its `service.name`
    /// counts only without `OTEL_SERVICE_NAME`), `OTEL_TRACES_SAMPLER[_ARG]`,
    /// and `OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,HEADERS,INSECURE,TIMEOUT}`
    /// where the `TRACES_` variable wins. `k=v,k=v` lists are percent-decoded.
    /// Only `OTEL_TRACES_EXPORTER` can turn tracing on; the other variables
    /// alone do not.
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
    let entries = raw.split(',').map(str::trim).filter(|e| !e.is_empty());
    for (index, entry) in entries.enumerate() {
        let malformed = || ConfigError::MalformedPair {
            key: key.into(),
            index: index + 1,
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
    let bad = || ConfigError::BadPercentEncoding { key: key.into() };
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

pub(super) fn validate_headers(
    key: &str,
    headers: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
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
