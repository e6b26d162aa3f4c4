//! The live telemetry handle and the client/server spans of a call, named
//! and attributed per OpenTelemetry's RPC semantic conventions.
use super::config::{TelemetryError, TracingConfig};
use super::Outcome;
use crate::context::{self, Extracted, RemoteContext, TraceParent};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, SpanId, TraceId};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running tracer provider. Cheap to clone. Dropping the last clone does
/// not flush: call [`shutdown`](Self::shutdown) on every clean end.
#[derive(Clone, Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// Builds the provider and exporter `cfg` describes. The OTLP/gRPC
    /// exporter must be built inside a tokio runtime.
    pub fn init(cfg: &TracingConfig) -> Result<Telemetry, TelemetryError> {
        Ok(Telemetry::from_provider(super::exporter::build_provider(
            cfg,
        )?))
    }

    /// Wraps a provider built elsewhere (tests use an in-memory exporter).
    pub fn from_provider(provider: SdkTracerProvider) -> Telemetry {
        let scope = InstrumentationScope::builder("sealrpc")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        Telemetry { provider, tracer }
    }

    /// Makes this provider the global one, so handler code using
    /// `opentelemetry::global::tracer` exports through it too.
    pub fn install_global(&self) {
        opentelemetry::global::set_tracer_provider(self.provider.clone());
    }

    /// The tracer sealrpc's own spans come from.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// The provider (for `force_flush` and friends).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Flushes and shuts the exporter down, off the async workers (the SDK
    /// blocks). Bounded by a timeout; failures are logged, never fatal.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.force_flush() {
                tracing::warn!("trace flush failed: {e}");
            }
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::debug!("trace exporter shutdown: {e}");
            }
        });
        if tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .is_err()
        {
            tracing::warn!("trace exporter did not shut down within 10 s");
        }
    }

    /// A root span for a command-line invocation: a child of `remote` (from
    /// the `TRACEPARENT` environment variable) when given, else a new trace.
    /// Attach the returned context while the command runs.
    pub fn root_context(&self, name: &str, remote: Option<&RemoteContext>) -> Context {
        let parent = remote.map_or_else(Context::new, remote_parent);
        let span = self
            .tracer
            .span_builder(name.to_owned())
            .with_kind(SpanKind::Internal)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Runs `fut` inside a new root span `name` (a child of `remote` when
    /// given) and ends the span when `fut` completes.
    pub async fn in_root<F: Future>(
        &self,
        name: &str,
        remote: Option<&RemoteContext>,
        fut: F,
    ) -> F::Output {
        let cx = self.root_context(name, remote);
        let out = opentelemetry::trace::FutureExt::with_context(fut, cx.clone()).await;
        cx.span().end();
        out
    }

    pub(super) fn start(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent: Context,
    ) -> SpanHandle {
        let span = builder.start_with_context(&self.tracer, &parent);
        SpanHandle {
            cx: parent.with_span(span),
        }
    }

    /// The server a client connection reached, as CLIENT span attributes.
    pub(crate) fn server_peer(&self, addr: SocketAddr) -> PeerAttrs {
        PeerAttrs([
            KeyValue::new("server.address", Arc::<str>::from(addr.ip().to_string())),
            KeyValue::new("server.port", i64::from(addr.port())),
        ])
    }

    /// The client on a server connection, as SERVER span attributes:
    /// `client.address` / `client.port` for a socket peer; for a ZeroMQ
    /// peer, its routing identity (there is no address to report).
    pub(crate) fn client_peer(&self, peer: &crate::transport::Peer) -> PeerAttrs {
        use crate::transport::Peer;
        PeerAttrs(match peer {
            Peer::Addr(a) => [
                KeyValue::new("client.address", Arc::<str>::from(a.ip().to_string())),
                KeyValue::new("client.port", i64::from(a.port())),
            ],
            Peer::Identity(id) => [
                KeyValue::new("network.peer.identity", id.clone()),
                KeyValue::new("network.transport", "zmq"),
            ],
        })
    }

    pub(crate) fn client_span(&self, method: &str, peer: Option<&PeerAttrs>) -> ClientSpan {
        let mut attrs = Vec::with_capacity(4);
        attrs.push(KeyValue::new("rpc.system", "sealrpc"));
        attrs.push(KeyValue::new("rpc.method", method.to_owned()));
        if let Some(p) = peer {
            attrs.extend_from_slice(&p.0);
        }
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        SpanHandle {
            cx: parent.with_span(span),
        }
    }

    /// A SERVER span for an authenticated request. A valid remote context
    /// becomes its parent; an invalid or duplicated one starts a new trace.
    ///
    /// With `trusted` false (a peer whose context is marked untrusted) the
    /// span starts a new trace with a span link to the caller's context.
    /// `method` is the route's name; `None` for an unknown method (those
    /// share one span name, for bounded cardinality).
    pub(crate) fn server_span(
        &self,
        method: Option<&Arc<str>>,
        remote: &Extracted,
        peer: &crate::transport::Peer,
        attrs: &PeerAttrs,
        trusted: bool,
    ) -> ServerSpan {
        let remote = extracted_parent(remote, peer);
        let [address, port] = attrs.0.clone();
        let (name, method) = match method {
            Some(m) => (m.to_string(), KeyValue::new("rpc.method", m.clone())),
            None => (
                "unknown method".to_owned(),
                KeyValue::new("rpc.method", "unknown method"),
            ),
        };
        let mut builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("rpc.system", "sealrpc"),
                method,
                address,
                port,
            ]);
        let parent = if trusted {
            remote
        } else {
            let sc = remote.span().span_context().clone();
            if sc.is_valid() {
                builder = builder.with_links(vec![opentelemetry::trace::Link::with_context(sc)]);
            }
            Context::new()
        };
        self.start(builder, parent)
    }
}

/// Converts our (current-W3C) tracestate into OpenTelemetry's. opentelemetry
/// 0.33 validates keys with the older grammar (`tenant@system`), so members
/// the current grammar allows but it rejects (`foo@@bar`) are dropped one by
/// one; every other member is kept, in order.
fn otel_state(state: &context::TraceState) -> TraceState {
    let members: Vec<(&str, &str)> = state.iter().collect();
    let mut out = TraceState::default();
    for (k, v) in members.into_iter().rev() {
        match out.insert(k.to_owned(), v.to_owned()) {
            Ok(next) => out = next,
            Err(_) => {
                tracing::debug!("tracestate member not representable in opentelemetry; dropped")
            }
        }
    }
    out
}

/// A connection's peer as two span attributes, formatted once when the
/// connection opens and shared by every span on it (formatting the address
/// per span cost more than a third of our own tracing work per call).
#[derive(Clone, Debug)]
pub struct PeerAttrs([KeyValue; 2]);

/// The parent a valid remote context names; a new trace otherwise.
pub(super) fn extracted_parent(remote: &Extracted, from: &dyn std::fmt::Display) -> Context {
    match remote {
        Extracted::Valid(remote) => remote_parent(remote),
        Extracted::None => Context::new(),
        Extracted::Invalid(e) => {
            tracing::debug!("ignoring trace context from {from}: {e}");
            Context::new()
        }
    }
}

fn remote_parent(remote: &RemoteContext) -> Context {
    let state = otel_state(&remote.state);
    let sc = SpanContext::new(
        TraceId::from_bytes(remote.parent.trace_id.0),
        SpanId::from_bytes(remote.parent.parent_id.0),
        TraceFlags::new(remote.parent.flags),
        true,
        state,
    );
    Context::new().with_remote_span_context(sc)
}

/// Longest error message recorded on a span (it may come from the peer).
const MAX_MESSAGE: usize = 256;

fn record(span: &opentelemetry::trace::SpanRef<'_>, outcome: Outcome<'_>) {
    if let Outcome::Failed { kind, message } = outcome {
        let message = match message.char_indices().nth(MAX_MESSAGE) {
            Some((i, _)) => &message[..i],
            None => message,
        };
        span.set_attribute(KeyValue::new("error.type", kind));
        span.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", kind),
                KeyValue::new("exception.message", message.to_owned()),
            ],
        );
        span.set_status(Status::error(message.to_owned()));
    }
    span.end();
}

/// One of sealrpc's spans (CLIENT, SERVER, PRODUCER or CONSUMER): its
/// context, to inject, to run work under, and to end with an outcome.
pub struct SpanHandle {
    pub(super) cx: Context,
}

/// The CLIENT span of one call.
pub type ClientSpan = SpanHandle;
/// The SERVER span of one handled request.
pub type ServerSpan = SpanHandle;
/// The PRODUCER span of one published job.
pub type ProducerSpan = SpanHandle;
/// The CONSUMER span of one job on one minion.
pub type ConsumerSpan = SpanHandle;

impl Drop for SpanHandle {
    /// A span dropped without [`end`](SpanHandle::end) belongs to work that
    /// was cancelled: its future was dropped because the caller went away,
    /// or a shutdown grace period ended. It ends as an error
    /// (`error.type` = `cancelled`), never as if the work had succeeded.
    fn drop(&mut self) {
        let span = self.cx.span();
        if span.is_recording() {
            record(
                &span,
                Outcome::Failed {
                    kind: "cancelled",
                    message: "cancelled before it finished (the caller went away, \
                              or the shutdown grace period ended)",
                },
            );
        }
    }
}

impl SpanHandle {
    /// This span's W3C context (`traceparent` fields and the `tracestate`
    /// header), for the channel to inject. Sampled or not: the sampled flag
    /// travels, so the receiver's parent-based sampler follows the caller.
    pub(crate) fn w3c(&self) -> Option<(TraceParent, String)> {
        let span = self.cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let parent = TraceParent {
            trace_id: context::TraceId(sc.trace_id().to_bytes()),
            parent_id: context::SpanId(sc.span_id().to_bytes()),
            flags: sc.trace_flags().to_u8(),
        };
        Some((parent, sc.trace_state().header()))
    }

    /// Runs `fut` with this span's context current on every poll, so spans
    /// opened inside (OpenTelemetry API, `tracing` via tracing-opentelemetry,
    /// or sealrpc's own CLIENT spans) nest under it.
    pub(crate) async fn run<F: Future>(&self, fut: F) -> F::Output {
        opentelemetry::trace::FutureExt::with_context(fut, self.cx.clone()).await
    }

    /// Ends the span, recording a failure when there was one.
    pub(crate) fn end(self, outcome: Outcome<'_>) {
        record(&self.cx.span(), outcome);
    }
}
