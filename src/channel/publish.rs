//! The publish path, master → minions. A job is a [`PublishLoad`] sealed as
//! a `publish` envelope with the PRODUCER span's context inside, sent down
//! a minion's own connection ([`PeerLink`], TCP and WebSocket) or on a
//! ZeroMQ PUB topic ([`PubSender`]). A minion opens it, extracts the
//! context only after it authenticated, and gets a [`Published`] job.
use super::config::{random_salt, ChannelConfig};
use super::outbox::Outbox;
use crate::context::{self, Extracted};
use crate::error::{Error, WireError};
use crate::telemetry::SpanHandle;
use crate::transport::pubsub::{self, Publisher, Subscriber};
use crate::wire::envelope::unix_ms;
use crate::wire::load::{self, Carrier, PublishLoad};
use crate::wire::{Kind, Opener, Sealer, SessionRegistry};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
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
    trace: Vec<(String, String)>,
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
            trace: trace_carrier(producer),
        }
    }

    fn load<'a>(&'a self, to: &'a str) -> PublishLoad<'a> {
        PublishLoad {
            jid: &self.jid,
            to,
            method: &self.method,
            body: &self.body,
            deadline_ms: self.timeout.as_millis().min(u128::from(u32::MAX)) as u32,
            trace: Carrier(
                self.trace
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
        }
    }
}

/// A span's W3C context as carrier pairs (`traceparent`, `tracestate`).
pub(crate) fn trace_carrier(span: Option<&SpanHandle>) -> Vec<(String, String)> {
    let mut trace = Vec::new();
    if let Some((parent, state)) = span.and_then(SpanHandle::w3c) {
        trace.push((context::TRACEPARENT.to_owned(), parent.to_header()));
        if !state.is_empty() {
            trace.push((context::TRACESTATE.to_owned(), state));
        }
    }
    trace
}

/// The master's ZeroMQ PUB socket and the sender session it seals with.
pub struct PubSender {
    publisher: Publisher,
    sealer: Mutex<Sealer>,
    max_frame: usize,
}

impl PubSender {
    /// Binds a PUB socket on `addr` (`HOST:PORT`).
    pub async fn bind(addr: &str, cfg: &ChannelConfig) -> Result<PubSender, Error> {
        Ok(PubSender {
            publisher: Publisher::bind_zmq(addr, cfg.max_frame).await?,
            sealer: Mutex::new(Sealer::new(cfg.key.clone(), random_salt())),
            max_frame: cfg.max_frame,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.publisher.local_addr()?)
    }

    /// Seals `job` for `to` (a minion id, or `*`) and publishes it on that
    /// minion's topic (or the broadcast topic).
    pub async fn send(&self, job: &Job, to: &str) -> Result<(), Error> {
        let mut frame = BytesMut::new();
        {
            let mut sealer = self.sealer.lock().unwrap_or_else(|p| p.into_inner());
            if sealer.needs_rekey() {
                sealer.rekey(random_salt());
            }
            sealer.seal(Kind::Publish, unix_ms(), self.max_frame, &mut frame, |b| {
                load::encode(&job.load(to), b)
            })?;
        }
        let topic = topic(to);
        Ok(self.publisher.publish(&topic, frame.freeze()).await?)
    }
}

/// The ZeroMQ topic of minion `to` (`*` = broadcast). Terminated, so one
/// id never prefix-matches another's.
pub(crate) fn topic(to: &str) -> Vec<u8> {
    match to {
        "*" => b"*\0".to_vec(),
        id => [b"m:", id.as_bytes(), b"\0"].concat(),
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

/// A minion's ZeroMQ subscription to its own topic and the broadcast one.
pub struct Subscription {
    sub: Subscriber,
    opener: Opener,
    tracing: bool,
}

impl Subscription {
    /// Subscribes minion `id` at the PUB socket `addr`: to the broadcast
    /// topic, then to its own, so a probe received on its own topic proves
    /// both are active (see `sealrpc_zmq::ZmqSubscriber`). `registry` is the
    /// minion's session registry, kept across reconnects (replay defence).
    pub async fn connect(
        addr: SocketAddr,
        id: &str,
        cfg: &ChannelConfig,
        registry: Arc<SessionRegistry>,
    ) -> Result<Subscription, Error> {
        let own = String::from_utf8(topic(id)).map_err(|_| Error::BadAddress(id.to_owned()))?;
        let sub = Subscriber::connect_zmq(addr, &["*\0", &own], cfg.max_frame).await?;
        let opener = Opener::new(
            cfg.keyring.clone(),
            registry,
            Kind::Publish,
            cfg.ttl_ms(),
            cfg.max_frame,
        );
        Ok(Subscription {
            sub,
            opener,
            tracing: cfg.telemetry.is_some(),
        })
    }

    /// The next authenticated job. A message that does not open (a replay,
    /// a wrong key, garbage) costs only itself and is logged; an `Err`
    /// means the subscription is gone.
    pub async fn next(&mut self) -> Result<Published, Error> {
        loop {
            let mut frame = match self.sub.recv().await {
                Ok(f) => f,
                Err(e) if pubsub::skippable(&e) => {
                    tracing::warn!("publish dropped: {e}");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let opened = match self.opener.open(&mut frame, unix_ms()) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!("publish refused: {e}");
                    continue;
                }
            };
            match decode_published(frame.freeze(), opened.load, self.tracing) {
                Ok(p) => return Ok(p),
                Err(e) => tracing::warn!("publish refused: {e}"),
            }
        }
    }
}
