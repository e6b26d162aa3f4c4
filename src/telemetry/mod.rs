//! Opt-in OpenTelemetry. Off by default: then no provider exists, no
//! exporter thread runs, and the channel injects nothing into loads.
//! With the cargo feature `otel` disabled, [`Telemetry`] is an uninhabited
//! type and every tracing branch in the channel compiles away.
//!
//! Only this module names `opentelemetry*`. The channel asks it for a
//! [`ClientSpan`] (whose context it injects into the load) and a
//! [`ServerSpan`] (built from the context it extracted from a load that
//! authenticated).
pub mod config;
#[cfg(feature = "otel")]
pub mod console_exporter;
#[cfg(not(feature = "otel"))]
mod disabled;
#[cfg(feature = "otel")]
mod exporter;
#[cfg(feature = "otel")]
pub mod file_exporter;
#[cfg(feature = "otel")]
pub mod memory;
#[cfg(feature = "otel")]
mod messaging;
#[cfg(feature = "otel")]
mod span;

#[cfg(not(feature = "otel"))]
pub(crate) use disabled::PeerAttrs;
#[cfg(not(feature = "otel"))]
pub use disabled::{ClientSpan, ConsumerSpan, ProducerSpan, ServerSpan, SpanHandle, Telemetry};
#[cfg(feature = "otel")]
pub(crate) use span::PeerAttrs;
#[cfg(feature = "otel")]
pub use span::{ClientSpan, ConsumerSpan, ProducerSpan, ServerSpan, SpanHandle, Telemetry};

/// Whether OpenTelemetry support was compiled in.
pub const COMPILED_IN: bool = cfg!(feature = "otel");

/// How a minion's CONSUMER span relates to the master's PRODUCER span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsumerMode {
    /// A child of the PRODUCER span: one trace per job (the default).
    #[default]
    Child,
    /// A new trace with a span link to the PRODUCER span, for jobs that may
    /// run long after they were published.
    Link,
}

/// The outcome a handler reports, as recorded on its server span.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) enum Outcome<'a> {
    Ok,
    Failed {
        kind: &'static str,
        message: &'a str,
    },
}
