//! Telemetry compiled out: uninhabited types, so no value of them exists and
//! every branch that would use one is dead code the compiler removes.
use super::config::{TelemetryError, TracingConfig};
use super::Outcome;
use std::future::Future;
use std::net::SocketAddr;

/// Never constructed without the `otel` feature.
#[derive(Clone, Debug)]
pub enum Telemetry {}
/// Never constructed without the `otel` feature.
pub enum SpanHandle {}
/// Never constructed without the `otel` feature.
#[derive(Clone, Debug)]
pub enum PeerAttrs {}
/// Never constructed without the `otel` feature.
pub type ClientSpan = SpanHandle;
/// Never constructed without the `otel` feature.
pub type ServerSpan = SpanHandle;
/// Never constructed without the `otel` feature.
pub type ProducerSpan = SpanHandle;
/// Never constructed without the `otel` feature.
pub type ConsumerSpan = SpanHandle;

impl Telemetry {
    /// Always an error: tracing was compiled out.
    pub fn init(_cfg: &TracingConfig) -> Result<Telemetry, TelemetryError> {
        Err(TelemetryError::Build(
            "sealrpc was built without the `otel` feature".into(),
        ))
    }
    /// Never called: no value exists.
    pub fn install_global(&self) {
        match *self {}
    }
    /// Nothing to flush.
    pub async fn shutdown(&self) {
        match *self {}
    }
    /// Never called: no value exists.
    pub async fn in_root<F: Future>(
        &self,
        _n: &str,
        _r: Option<&crate::context::RemoteContext>,
        _f: F,
    ) -> F::Output {
        match *self {}
    }
    pub(crate) fn server_peer(&self, _addr: SocketAddr) -> PeerAttrs {
        match *self {}
    }
    pub(crate) fn client_peer(&self, _peer: &crate::transport::Peer) -> PeerAttrs {
        match *self {}
    }
    pub(crate) fn client_span(&self, _method: &str, _peer: Option<&PeerAttrs>) -> ClientSpan {
        match *self {}
    }
    pub(crate) fn server_span(
        &self,
        _m: Option<&std::sync::Arc<str>>,
        _c: &crate::context::Extracted,
        _p: &crate::transport::Peer,
        _a: &PeerAttrs,
        _trusted: bool,
    ) -> ServerSpan {
        match *self {}
    }
    pub(crate) fn producer_span(&self, _m: &str, _t: &str, _j: &str, _n: usize) -> ProducerSpan {
        match *self {}
    }
    pub(crate) fn consumer_span(
        &self,
        _m: &str,
        _j: &str,
        _id: &str,
        _c: &crate::context::Extracted,
        _mode: super::ConsumerMode,
    ) -> ConsumerSpan {
        match *self {}
    }
}

impl SpanHandle {
    pub(crate) fn w3c(&self) -> Option<(crate::context::TraceParent, String)> {
        match *self {}
    }
    pub(crate) async fn run<F: Future>(&self, _fut: F) -> F::Output {
        match *self {}
    }
    pub(crate) fn end(self, _outcome: Outcome<'_>) {
        match self {}
    }
}
