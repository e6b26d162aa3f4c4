//! The server: accepts connections, opens and authenticates each request,
//! extracts its trace context, and runs its handler concurrently inside a
//! SERVER span. A bad envelope costs only its own connection.
use super::auth::{self, Principal};
use super::config::{parse_url, random_salt, ChannelConfig};
use super::handler::{run_handler, HandlerError, Request, Router};
use super::outbox::Outbox;
use super::publish::PeerLink;
use crate::context;
use crate::error::{Error, WireError};
use crate::telemetry::Outcome;
use crate::transport::{AnyRecv, AnySend, FrameRecv, FrameSend, Listener, Peer, TransportError};
use crate::wire::envelope::unix_ms;
use crate::wire::header::{alert_frame, AlertCode};
use crate::wire::load::{self, ReplyLoad, ReplyStatus, RequestLoad};
use crate::wire::{Kind, Opener, Sealer, SealerLimits, SessionRegistry};
use bytes::BytesMut;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Sessions remembered across all connections (replay defence).
const REGISTRY_CAPACITY: usize = 1 << 20;

struct Shared {
    router: Router,
    cfg: ChannelConfig,
    registry: Arc<SessionRegistry>,
}

/// A bound server, not yet running.
pub struct Server {
    /// One or more listeners (e.g. TCP and WebSocket at once), one service.
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    grace: Duration,
}

impl Server {
    /// Binds `tcp://HOST:PORT` or `ws://HOST:PORT/PATH` (port 0 picks a free port).
    pub async fn bind(url: &str, router: Router, cfg: ChannelConfig) -> Result<Server, Error> {
        Server::bind_all(&[url], router, cfg).await
    }

    /// Binds every URL: one server (one router, one replay registry)
    /// listening on several transports at once.
    pub async fn bind_all<S: AsRef<str>>(
        urls: &[S],
        router: Router,
        cfg: ChannelConfig,
    ) -> Result<Server, Error> {
        if urls.is_empty() {
            return Err(Error::BadAddress(String::new()));
        }
        let mut listeners = Vec::with_capacity(urls.len());
        for url in urls {
            listeners.push(Listener::bind(&parse_url(url.as_ref())?, cfg.max_frame).await?);
        }
        // Envelopes from before this server existed are replays by definition.
        let registry = Arc::new(
            SessionRegistry::new(cfg.ttl_ms(), REGISTRY_CAPACITY).with_not_before(unix_ms()),
        );
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                router,
                cfg,
                registry,
            }),
            grace: Duration::from_secs(5),
        })
    }

    /// How long in-flight requests may run on after shutdown (default 5 s).
    pub fn with_grace(mut self, grace: Duration) -> Server {
        self.grace = grace;
        self
    }

    /// The bound address (of the first listener).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.first()?.local_addr()?)
    }

    /// The URL clients connect to (of the first listener), e.g.
    /// `tcp://127.0.0.1:40111`.
    pub fn local_url(&self) -> Result<String, Error> {
        Ok(self.first()?.local_url()?)
    }

    /// Every listener's URL, in the order bound.
    pub fn local_urls(&self) -> Result<Vec<String>, Error> {
        self.listeners.iter().map(|l| Ok(l.local_url()?)).collect()
    }

    fn first(&self) -> Result<&Listener, Error> {
        self.listeners
            .first()
            .ok_or_else(|| Error::BadAddress(String::new()))
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish (up to the grace period) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // The not-before check guards the first TTL after start (monotonic
        // time); then the TTL check alone covers pre-start envelopes.
        let registry = self.shared.registry.clone();
        let ttl = self.shared.cfg.ttl;
        let clear = tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            registry.clear_not_before();
        });
        let _clear = AbortOnDrop(clear);
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = accept_any(&self.listeners) => match accepted {
                    Ok((r, w, peer)) => {
                        conns.spawn(connection(r, w, peer, self.shared.clone(), stop_rx.clone()));
                    }
                    Err(e) if e.concerns_one_connection() => {
                        tracing::debug!("connection refused during its handshake: {e}");
                    }
                    Err(e) => {
                        // e.g. out of file descriptors: back off briefly.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(self.grace, async {
            while conns.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!(
                "{} connections still busy after {:?}; aborting them",
                conns.len(),
                self.grace
            );
            conns.shutdown().await;
        }
        Ok(())
    }
}

async fn connection(
    mut reader: impl FrameRecv,
    mut writer: impl FrameSend,
    peer: Peer,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    // With identities, nothing but the handshake runs until the peer is
    // authenticated and accepted (CVE-2020-11651's lesson).
    let (key, keyring, principal) = match &cfg.identity {
        Some(identity) => {
            let shaking = auth::respond(
                &mut reader,
                &mut writer,
                identity,
                cfg.max_frame,
                cfg.handshake_timeout,
            );
            match shaking.await {
                Ok(s) => (s.send, s.recv, Some(Arc::new(s.peer))),
                Err(e) => {
                    tracing::info!("handshake with {peer} refused: {e}");
                    writer.close().await;
                    return;
                }
            }
        }
        None => (cfg.key.clone(), cfg.keyring.clone(), None),
    };
    let outbox = Outbox::new(Sealer::new(key, random_salt()), cfg.max_frame);
    // Aborted if this task is (at the end of the shutdown grace period):
    // a writer stuck on a peer that stopped reading must not outlive it.
    let mut writer_task = AbortOnDrop(tokio::spawn(outbox.clone().run_writer(writer)));
    let mut opener = Opener::new(
        keyring,
        shared.registry.clone(),
        Kind::Request,
        cfg.ttl_ms(),
        cfg.max_frame,
    );
    opener.require_rekey_after(SealerLimits::default().soft);
    let mut conn = Conn {
        peer: peer.clone(),
        shared: shared.clone(),
        outbox: outbox.clone(),
        opener,
        bound: false,
        handlers: JoinSet::new(),
        principal,
    };
    let limit = cfg.max_in_flight.max(1);
    // Whether the peer is still there to receive replies when the loop ends.
    let peer_alive = loop {
        tokio::select! {
            _ = stop.changed() => break true,
            // At the in-flight limit the connection stops reading: TCP pushes back.
            frame = reader.recv(), if conn.handlers.len() < limit => match frame {
                Ok(Some(frame)) => {
                    if let Err(e) = conn.dispatch(frame) {
                        tracing::warn!("closing connection from {peer}: {e}");
                        let code = match e {
                            WireError::BadLoad(_)
                            | WireError::TooLarge { .. }
                            | WireError::Truncated { .. }
                            | WireError::BadMagic
                            | WireError::UnsupportedVersion(_)
                            | WireError::UnknownKind(_)
                            | WireError::WrongKind { .. } => AlertCode::Malformed,
                            _ => AlertCode::Refused,
                        };
                        outbox.alert_and_close(&alert_frame(code));
                        break false;
                    }
                }
                Ok(None) => break false,
                Err(e) => {
                    tracing::warn!("closing connection from {peer}: {e}");
                    if matches!(e, TransportError::TooLarge { .. }) {
                        outbox.alert_and_close(&alert_frame(AlertCode::Malformed));
                    }
                    break false;
                }
            },
            Some(_) = conn.handlers.join_next(), if !conn.handlers.is_empty() => {}
        }
    };
    if !peer_alive {
        // Nobody can receive these replies: cancel the work (as a dropped
        // call is cancelled). On shutdown, in-flight handlers run on.
        conn.handlers.abort_all();
    }
    while conn.handlers.join_next().await.is_some() {}
    outbox.close();
    let _ = (&mut writer_task.0).await;
    conn.opener.close(unix_ms());
}

/// The next connection on any listener (each `accept` is cancel-safe).
async fn accept_any(listeners: &[Listener]) -> Result<(AnyRecv, AnySend, Peer), TransportError> {
    let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
    futures::future::select_all(accepts).await.0
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection's receive side.
struct Conn {
    peer: Peer,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    opener: Opener,
    /// Whether replies are bound yet (to the first request's session).
    bound: bool,
    handlers: JoinSet<()>,
    /// Who the handshake authenticated (identity mode).
    principal: Option<Arc<Principal>>,
}

impl Conn {
    /// Opens one frame and starts its handler. An `Err` closes the connection.
    fn dispatch(&mut self, mut frame: BytesMut) -> Result<(), WireError> {
        let opened = self.opener.open(&mut frame, unix_ms())?;
        if !self.bound {
            self.outbox.bind(opened.header.salt);
            self.bound = true;
        }
        let plain = frame.freeze().slice(opened.load);
        let req: RequestLoad = load::decode(&plain)?;
        let handler = self.shared.router.get(req.method).cloned();
        // The context is taken only here, after the envelope authenticated.
        let span = self.shared.cfg.telemetry.as_ref().map(|t| {
            let remote = context::extract(&req.trace.0);
            // Unknown methods share one span name (bounded cardinality).
            let name = if handler.is_some() {
                req.method
            } else {
                "unknown method"
            };
            let trusted = self.principal.as_ref().is_none_or(|p| p.trusted_context);
            t.server_span(name, &remote, &self.peer, trusted)
        });
        let id = req.id;
        let Some(handler) = handler else {
            let msg = format!("no such method: {}", truncated(req.method));
            let outbox = self.outbox.clone();
            self.start(async move {
                if let Some(span) = span {
                    span.end(Outcome::Failed {
                        kind: "no_such_method",
                        message: &msg,
                    });
                }
                reply(&outbox, id, ReplyStatus::NoSuchMethod, msg.as_bytes()).await;
            });
            return Ok(());
        };
        let deadline = (req.deadline_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(u64::from(req.deadline_ms)));
        let request = Request {
            method: req.method.to_owned(),
            body: plain.slice_ref(req.body),
            deadline,
            peer: self.peer.clone(),
            link: PeerLink::new(&self.outbox),
            principal: self.principal.clone(),
        };
        if let Err(e) = self.shared.router.check(&request) {
            let outbox = self.outbox.clone();
            self.start(async move {
                if let Some(span) = span {
                    span.end(Outcome::Failed {
                        kind: "permission_denied",
                        message: &e.message,
                    });
                }
                reply(
                    &outbox,
                    id,
                    ReplyStatus::PermissionDenied,
                    e.message.as_bytes(),
                )
                .await;
            });
            return Ok(());
        }
        let outbox = self.outbox.clone();
        let max_body = self.shared.cfg.max_frame.saturating_sub(REPLY_OVERHEAD);
        self.start(async move {
            let fut = run_handler(handler(request), deadline);
            let result = match &span {
                Some(span) => span.run(fut).await,
                None => fut.await,
            };
            let result = result.and_then(|body| {
                if body.len() > max_body {
                    Err((
                        ReplyStatus::Error,
                        HandlerError::new("reply too large for the frame limit"),
                    ))
                } else {
                    Ok(body)
                }
            });
            match &result {
                Ok(body) => reply(&outbox, id, ReplyStatus::Ok, body).await,
                Err((status, e)) => reply(&outbox, id, *status, e.message.as_bytes()).await,
            }
            if let Some(span) = span {
                span.end(match &result {
                    Ok(_) => Outcome::Ok,
                    Err((status, e)) => Outcome::Failed {
                        kind: status_kind(*status),
                        message: &e.message,
                    },
                });
            }
        });
        Ok(())
    }

    /// Runs one request's work (handler, span, reply) until it first waits,
    /// here on the connection's task; only work that waits becomes a task.
    /// A handler that answers at once (most do) thus costs no spawn, no
    /// timer and no wake-up, and its reply joins the batch this read
    /// produces. Panics are caught inside `fut` (see `run_handler`).
    fn start(&mut self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut fut = Box::pin(fut);
        // Polled once with a no-op waker: a future that returns `Pending`
        // has registered interest in whatever it waits for, and is polled
        // again, with its task's waker, once spawned.
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        if fut.as_mut().poll(&mut cx).is_pending() {
            self.handlers.spawn(fut);
        }
    }
}

/// Envelope and load bytes around a reply body: header, tag, and the
/// MessagePack array with its id, status and bin-32 header.
const REPLY_OVERHEAD: usize = crate::wire::HEADER_LEN + crate::wire::TAG_LEN + 1 + 9 + 1 + 5;

async fn reply(outbox: &Outbox, id: u64, status: ReplyStatus, body: &[u8]) {
    let load = ReplyLoad {
        id,
        status: status as u8,
        body,
    };
    if let Err(e) = outbox.seal(Kind::Reply, |b| load::encode(&load, b)).await {
        tracing::debug!("reply not sent: {e}");
    }
}

fn status_kind(s: ReplyStatus) -> &'static str {
    match s {
        ReplyStatus::Ok => "ok",
        ReplyStatus::Error => "handler_error",
        ReplyStatus::NoSuchMethod => "no_such_method",
        ReplyStatus::DeadlineExceeded => "deadline_exceeded",
        ReplyStatus::PermissionDenied => "permission_denied",
    }
}

fn truncated(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
