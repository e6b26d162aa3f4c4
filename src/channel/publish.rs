//! The publish path, master → minions. A job is a [`PublishLoad`] sealed as
//! a `publish` envelope with the PRODUCER span's context inside, sent down
//! a minion's own connection ([`PeerLink`], TCP and WebSocket) or on a
//! ZeroMQ PUB topic ([`PubSender`]). A minion opens it, extracts the
//! context only after it authenticated, and gets a [`Published`] job.
use super::outbox::Outbox;
use crate::context::{self, Extracted};
use crate::error::{Error, WireError};
use crate::telemetry::SpanHandle;
use crate::wire::load::{self, Carrier, PublishLoad};
use crate::wire::Kind;
use bytes::Bytes;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The connection a request came in on, as a handle the master can push
/// publishes down (TCP, WebSocket). Holds no connection open.
#[derive(Clone, Default)]
pub struct PeerLink {
    outbox: Weak<Outbox>,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink")
            .field("open", &self.is_open())
            .finish()
    }
}

impl PeerLink {
    pub(crate) fn new(outbox: &Arc<Outbox>) -> PeerLink {
        PeerLink {
            outbox: Arc::downgrade(outbox),
        }
    }

    /// Whether the connection is still up.
    pub fn is_open(&self) -> bool {
        self.outbox.upgrade().is_some_and(|o| !o.is_closed())
    }

    /// Whether both handles name the same connection.
    pub fn same_connection(&self, other: &PeerLink) -> bool {
        self.outbox.strong_count() > 0 && Weak::ptr_eq(&self.outbox, &other.outbox)
    }

    /// Closes the connection with a `NotAuthorized` alert (its minion's key
    /// is no longer accepted).
    pub fn refuse(&self) {
        if let Some(outbox) = self.outbox.upgrade() {
            let alert =
                crate::wire::header::alert_frame(crate::wire::header::AlertCode::NotAuthorized);
            outbox.alert_and_close(&alert);
        }
    }

    /// Seals `job` for minion `to` (or `*`) into this connection, without
    /// waiting: a backed-up connection fails with [`Error::Busy`].
    pub fn push(&self, job: &Job, to: &str) -> Result<(), Error> {
        let outbox = self.outbox.upgrade().ok_or(Error::ConnectionClosed)?;
        outbox.try_seal(Kind::Publish, |b| load::encode(&job.load(to), b))
    }
}

/// A job ready to publish: its id, method, body, deadline, and the trace
/// context of its PRODUCER span (empty when tracing is off).
#[derive(Clone, Debug)]
pub struct Job {
    pub jid: String,
    pub method: String,
    pub body: Bytes,
    /// How long the master waits for returns.
    pub timeout: Duration,
    trace: TraceCarrier,
}

impl Job {
    /// A job; `producer` is its PRODUCER span, whose context travels inside
    /// every sealed publish (the only place a publish gets trace context).
    pub fn new(
        jid: String,
        method: String,
        body: Bytes,
        timeout: Duration,
        producer: Option<&SpanHandle>,
    ) -> Job {
        Job {
            jid,
            method,
            body,
            timeout,
            trace: TraceCarrier::of(producer),
        }
    }

    pub(crate) fn load<'a>(&'a self, to: &'a str) -> PublishLoad<'a> {
        PublishLoad {
            jid: &self.jid,
            to,
            method: &self.method,
            body: &self.body,
            deadline_ms: self.timeout.as_millis().min(u128::from(u32::MAX)) as u32,
            trace: self.trace.pairs(),
        }
    }
}

/// A span's W3C context, formatted once, for the loads that carry it.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceCarrier {
    parent: Option<context::HeaderValue>,
    /// The `tracestate` header; empty when there is none.
    state: String,
}

impl TraceCarrier {
    /// `span`'s context; empty without a span (tracing off).
    pub(crate) fn of(span: Option<&SpanHandle>) -> TraceCarrier {
        match span.and_then(SpanHandle::w3c) {
            Some((parent, state)) => TraceCarrier {
                parent: Some(parent.header()),
                state,
            },
            None => TraceCarrier::default(),
        }
    }

    /// The carrier pairs: `traceparent`, then `tracestate` if any.
    pub(crate) fn pairs(&self) -> Carrier<'_> {
        let Some(parent) = &self.parent else {
            return Carrier::default();
        };
        let mut pairs = Vec::with_capacity(1 + usize::from(!self.state.is_empty()));
        pairs.push((context::TRACEPARENT, parent.as_str()));
        if !self.state.is_empty() {
            pairs.push((context::TRACESTATE, self.state.as_str()));
        }
        Carrier(pairs)
    }
}

/// A job as a minion receives it, opened and authenticated.
#[derive(Clone, Debug)]
pub struct Published {
    /// The job id.
    pub jid: String,
    /// The minion it is addressed to, or `*`.
    pub to: String,
    pub method: String,
    /// A zero-copy slice of the decrypted envelope.
    pub body: Bytes,
    /// When the master stops waiting for the return.
    pub deadline: Option<Instant>,
    /// The PRODUCER span's context (extracted only when tracing is on).
    pub(crate) context: Extracted,
}

/// Decodes an opened publish envelope (`frame[load]` is the plaintext).
pub(crate) fn decode_published(
    frame: Bytes,
    load: std::ops::Range<usize>,
    tracing: bool,
) -> Result<Published, WireError> {
    let plain = frame.slice(load);
    let p: PublishLoad = load::decode(&plain)?;
    Ok(Published {
        jid: p.jid.to_owned(),
        to: p.to.to_owned(),
        method: p.method.to_owned(),
        body: plain.slice_ref(p.body),
        deadline: (p.deadline_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(u64::from(p.deadline_ms))),
        context: if tracing {
            context::extract(&p.trace.0)
        } else {
            Extracted::None
        },
    })
}
