//! Configuration and telemetry errors.
/// A bad configuration value. Every variant names the offending key or
/// environment variable (`key`) and, where it cannot be a secret, the value.
/// Header and resource lists (`k=v,…`) can carry credentials, so their
/// errors give only the entry's position, never its text.
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
    #[error("{key}: entry {index} is malformed: expected key=value")]
    MalformedPair { key: String, index: usize },
    /// Bad `%XX` escape, or decoded bytes that are not UTF-8.
    #[error("{key}: invalid percent-encoding in a value")]
    BadPercentEncoding { key: String },
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
