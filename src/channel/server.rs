//! The server: accepts connections, opens and authenticates each request,
//! extracts its trace context, and runs its handler concurrently inside a
//! SERVER span. A bad envelope costs only its own connection.
use super::auth::{self, Principal};
use super::config::{parse_url, random_salt, ChannelConfig};
use super::drain::{Busy, Phase};
use super::handler::{run_handler, HandlerError, Request, Route, Router};
use super::outbox::Outbox;
use super::publish::PeerLink;
use super::retries::{Begin, RetryTable, Runner};
use crate::context;
use crate::error::{Error, WireError};
use crate::telemetry::Outcome;
use crate::transport::{AnyRecv, AnySend, FrameRecv, FrameSend, Listener, Peer, TransportError};
use crate::wire::envelope::unix_ms;
use crate::wire::header::{alert_frame, AlertCode};
use crate::wire::load::{self, ReplyLoad, ReplyStatus, RequestLoad};
use crate::wire::{Kind, Opener, Sealer, SealerLimits, SessionRegistry};
use bytes::{Bytes, BytesMut};
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
    /// Calls that may be retried: one handler run per retry key.
    retries: Arc<RetryTable>,
    /// Handlers running on all connections (the drain waits for none).
    busy: Busy,
}

/// A bound server, not yet running.
pub struct Server {
    /// One or more listeners (e.g. TCP and WebSocket at once), one service.
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    grace: Duration,
    /// Where the shutdown is (see `drain.rs`); every connection follows it.
    phase: watch::Sender<Phase>,
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
            // The transports' own handshakes (WebSocket upgrade, ZMTP
            // greeting) are bounded like ours: a silent peer is dropped.
            let endpoint = parse_url(url.as_ref())?;
            let timeout = cfg.handshake_timeout;
            listeners.push(Listener::bind_with(&endpoint, cfg.max_frame, timeout).await?);
        }
        // Envelopes from before this server existed are replays by definition.
        let registry = Arc::new(
            SessionRegistry::new(cfg.ttl_ms(), REGISTRY_CAPACITY).with_not_before(unix_ms()),
        );
        let retries = RetryTable::new(cfg.retry_entries, cfg.retry_bytes);
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                // A draining flag of this server's own, even if the caller
                // cloned the router for another server.
                router: router.own_drain_flag(),
                cfg,
                registry,
                retries,
                busy: Busy::default(),
            }),
            grace: Duration::from_secs(5),
            phase: watch::Sender::new(Phase::Serving),
        })
    }

    /// How long in-flight requests may run on after shutdown (default 5 s).
    pub fn with_grace(mut self, grace: Duration) -> Server {
        self.grace = grace;
        self
    }

    /// Completes once the server has stopped accepting connections: its
    /// shutdown future completed and its TCP and WebSocket listeners are
    /// closed (see [`run`](Self::run)). Completes at once if it already
    /// has, or if the server is gone.
    pub fn stopped_accepting(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut phase = self.phase.subscribe();
        async move {
            let _ = phase.wait_for(|p| *p >= Phase::Draining).await;
        }
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

    /// Serves until `shutdown` completes, then shuts down gracefully (the
    /// phases are described in `channel/drain.rs`):
    ///
    /// - it stops accepting: TCP and WebSocket listeners are closed at
    ///   once (the OS refuses new connections); new ZeroMQ connections are
    ///   dropped as they arrive;
    /// - requests in flight run on and are answered; on open connections,
    ///   new requests are refused with `Error::Overloaded`, except methods
    ///   marked [`Router::serve_while_draining`];
    /// - once no handler runs, every connection flushes its replies and
    ///   closes, and `run` returns;
    /// - if the grace period ([`with_grace`](Self::with_grace), default
    ///   5 s) ends first, the handlers still running are cancelled (their
    ///   callers see the connection close, `Error::ConnectionClosed`, and
    ///   their SERVER spans end as cancelled) and `run` returns.
    ///
    /// `run` returns only once every handler has finished or been
    /// cancelled, so every SERVER span has ended: flush telemetry after it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Server {
            listeners,
            shared,
            grace,
            phase,
        } = self;
        // The not-before check guards the first TTL after start (monotonic
        // time); then the TTL check alone covers pre-start envelopes.
        let registry = shared.registry.clone();
        let ttl = shared.cfg.ttl;
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
                accepted = accept_any(&listeners) => match accepted {
                    Ok((r, w, peer)) => {
                        conns.spawn(connection(r, w, peer, shared.clone(), phase.subscribe()));
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
        let deadline = tokio::time::Instant::now() + grace;
        // Stop accepting. A ZeroMQ listener's socket also carries the open
        // connections: it stays bound, and new connections are dropped.
        let zmq: Vec<Listener> = listeners
            .into_iter()
            .filter(|l| matches!(l, Listener::Zmq(_)))
            .collect();
        shared.router.start_draining();
        phase.send_replace(Phase::Draining);
        let drained = tokio::time::timeout_at(deadline, async {
            let idle = shared.busy.idle();
            tokio::pin!(idle);
            loop {
                tokio::select! {
                    _ = &mut idle => break,
                    refused = accept_any(&zmq), if !zmq.is_empty() => drop(refused),
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            phase.send_replace(Phase::Closing);
            while conns.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!(
                "{} connections still busy after the {:?} grace period; cancelling their requests",
                conns.len(),
                grace
            );
            phase.send_replace(Phase::Aborting);
            // Each connection cancels its handlers and ends; one stuck
            // anywhere else is aborted.
            let ended = async { while conns.join_next().await.is_some() {} };
            if tokio::time::timeout(ABORT_WAIT, ended).await.is_err() {
                conns.shutdown().await;
            }
        }
        for l in zmq {
            l.close().await;
        }
        Ok(())
    }
}

/// How long connections get to cancel their handlers once the grace
/// period has ended, before their tasks are aborted.
const ABORT_WAIT: Duration = Duration::from_secs(1);

async fn connection(
    mut reader: impl FrameRecv,
    mut writer: impl FrameSend,
    peer: Peer,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
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
            let shaken = tokio::select! {
                r = shaking => r,
                // Shutting down: a peer still in its handshake is not served.
                _ = phase.wait_for(|p| *p >= Phase::Closing) => return,
            };
            match shaken {
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
    let mut writer_task = AbortOnDrop(tokio::spawn(outbox.clone().write_until_closed(writer)));
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
        peer_attrs: None,
        shared: shared.clone(),
        outbox: outbox.clone(),
        opener,
        bound: false,
        handlers: JoinSet::new(),
        retried: JoinSet::new(),
        principal,
    };
    let limit = cfg.max_in_flight.max(1);
    // What this connection last added to the server's count of running
    // handlers (a drain at shutdown lasts until that count is 0).
    let mut busy = 0;
    // Shutting down: while the server drains, the loop below goes on
    // (requests are refused, see `drain.rs`); then it stops reading.
    // Made once, not per frame: each would register with the watch.
    let mut closing_rx = phase.clone();
    let closing = closing_rx.wait_for(|p| *p >= Phase::Closing);
    tokio::pin!(closing);
    // Whether the peer is still there to receive replies when the loop ends.
    let peer_alive = loop {
        tokio::select! {
            _ = &mut closing => break true,
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
                    // A peer that vanishes (reset, closed mid-frame) is
                    // routine; bytes that break the transport are not.
                    if matches!(e, TransportError::Io(_)) {
                        tracing::debug!("connection from {peer} ended: {e}");
                    } else {
                        tracing::warn!("closing connection from {peer}: {e}");
                    }
                    if matches!(e, TransportError::TooLarge { .. }) {
                        outbox.alert_and_close(&alert_frame(AlertCode::Malformed));
                    }
                    break false;
                }
            },
            Some(_) = conn.handlers.join_next(), if !conn.handlers.is_empty() => {}
            Some(_) = conn.retried.join_next(), if !conn.retried.is_empty() => {}
        }
        shared
            .busy
            .report(&mut busy, conn.handlers.len() + conn.retried.len());
    };
    if !peer_alive {
        // Nobody can receive these replies: cancel the work (as a dropped
        // call is cancelled). On shutdown, in-flight handlers run on.
        conn.handlers.abort_all();
    }
    // Retryable calls run to completion even without their peer: a retry
    // on another connection is waiting for (or will ask for) the result.
    // On shutdown, both kinds run on until the grace period ends.
    let aborting = loop {
        if conn.handlers.is_empty() && conn.retried.is_empty() {
            break false;
        }
        tokio::select! {
            Some(_) = conn.handlers.join_next(), if !conn.handlers.is_empty() => {}
            Some(_) = conn.retried.join_next(), if !conn.retried.is_empty() => {}
            _ = phase.wait_for(|p| *p == Phase::Aborting) => break true,
        }
    };
    if aborting {
        // The grace period ended: cancel, and wait until each handler is
        // dropped (its span then ends as cancelled, before any flush).
        conn.handlers.shutdown().await;
        conn.retried.shutdown().await;
    }
    shared.busy.report(&mut busy, 0);
    // Shutting down with the peer still there: say so after the last reply.
    let goodbye = peer_alive && !aborting;
    if goodbye {
        outbox.alert_and_close(&alert_frame(AlertCode::GoingAway));
    } else {
        outbox.close();
    }
    if !aborting {
        // Replies still queued are written, unless the grace period ends
        // first (a peer that does not read must not hold up the shutdown).
        let aborted = async {
            let _ = phase.wait_for(|p| *p == Phase::Aborting).await;
        };
        tokio::pin!(aborted);
        tokio::select! {
            written = &mut writer_task.0 => if let Ok(Some(writer)) = written {
                if goodbye {
                    tokio::select! {
                        () = peer_closes(&mut reader) => {}
                        () = &mut aborted => {}
                    }
                }
                writer.close().await;
            },
            () = &mut aborted => {}
        }
    }
    conn.opener.close(unix_ms());
}

/// How long a server that is shutting down waits for a peer to close the
/// connection after its last reply and the going-away alert.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// Completes when the peer has closed the connection (requests it sends
/// meanwhile are not run: they were sent after the going-away alert was
/// on its way), or after [`GOODBYE_WAIT`]. The server closes only then:
/// a transport may report a close ahead of frames it has not delivered
/// yet (zeromq's DEALER drops what it buffered for a peer that
/// disconnects), so the peer closing first is what makes the last replies
/// arrive.
async fn peer_closes(reader: &mut impl FrameRecv) {
    let closed = async { while let Ok(Some(_)) = reader.recv().await {} };
    let _ = tokio::time::timeout(GOODBYE_WAIT, closed).await;
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
    /// `peer` as span attributes, formatted at the first traced request.
    peer_attrs: Option<crate::telemetry::PeerAttrs>,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    opener: Opener,
    /// Whether replies are bound yet (to the first request's session).
    bound: bool,
    handlers: JoinSet<()>,
    /// Handlers of retryable calls (not cancelled when the peer leaves).
    retried: JoinSet<()>,
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
        let route = self.shared.router.get(req.method);
        // The context is taken only here, after the envelope authenticated.
        let span = self.shared.cfg.telemetry.as_ref().map(|t| {
            let remote = context::extract(&req.trace.0);
            let trusted = self.principal.as_ref().is_none_or(|p| p.trusted_context);
            let attrs = self
                .peer_attrs
                .get_or_insert_with(|| t.client_peer(&self.peer));
            let method = route.as_ref().map(|r| &r.name);
            t.server_span(method, &remote, &self.peer, attrs, trusted)
        });
        let id = req.id;
        let Some(Route { name, handler }) = route else {
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
            method: name,
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
        let mut runner = None;
        if !req.retry.is_empty() {
            if req.retry.len() > load::MAX_RETRY_KEY {
                return Err(WireError::BadLoad("retry key too long"));
            }
            // The caller retries only until its deadline (relative, so no
            // clock skew): kept that long after the run ends, plus a second
            // for a retry still in transit. No deadline: the envelope TTL.
            let keep = match req.deadline_ms {
                0 => self.shared.cfg.ttl,
                ms => Duration::from_millis(u64::from(ms)) + Duration::from_secs(1),
            };
            match self.shared.retries.begin(req.retry, keep) {
                Begin::Run(r) => runner = Some(r),
                other => {
                    self.answer_retry(id, other, span);
                    return Ok(());
                }
            }
        }
        let outbox = self.outbox.clone();
        let max_body = self.shared.cfg.max_frame.saturating_sub(REPLY_OVERHEAD);
        let retried = runner.is_some();
        let work = async move {
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
            if let Some(runner) = runner {
                finish(runner, &result);
            }
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
        };
        if retried {
            start_in(&mut self.retried, work);
        } else {
            start_in(&mut self.handlers, work);
        }
        Ok(())
    }

    /// Answers an attempt of a call that already ran, is running, or
    /// cannot be taken (the retry table is full): never a second run.
    fn answer_retry(&mut self, id: u64, begin: Begin, span: Option<crate::telemetry::ServerSpan>) {
        let outbox = self.outbox.clone();
        self.start(async move {
            let (status, body) = match begin {
                Begin::Done(stored) => stored,
                Begin::Wait(rx) => rx.await.unwrap_or_else(|_| {
                    let msg = "the call's first attempt was cancelled before it finished";
                    (ReplyStatus::Error, Bytes::from_static(msg.as_bytes()))
                }),
                Begin::Full | Begin::Run(_) => {
                    let msg = "retry table full: the call was not run; try again later";
                    (ReplyStatus::Overloaded, Bytes::from_static(msg.as_bytes()))
                }
            };
            reply(&outbox, id, status, &body).await;
            if let Some(span) = span {
                let message = String::from_utf8_lossy(&body);
                span.end(match status {
                    ReplyStatus::Ok => Outcome::Ok,
                    other => Outcome::Failed {
                        kind: status_kind(other),
                        message: &message,
                    },
                });
            }
        });
    }

    /// Runs one request's work (handler, span, reply) until it first waits,
    /// here on the connection's task; only work that waits becomes a task.
    /// A handler that answers at once (most do) thus costs no spawn, no
    /// timer and no wake-up, and its reply joins the batch this read
    /// produces. Panics are caught inside `fut` (see `run_handler`).
    fn start(&mut self, fut: impl Future<Output = ()> + Send + 'static) {
        start_in(&mut self.handlers, fut);
    }
}

/// Stores a retryable call's result for its later attempts.
fn finish(runner: Runner, result: &Result<Bytes, (ReplyStatus, HandlerError)>) {
    match result {
        Ok(body) => runner.finish(ReplyStatus::Ok, body),
        Err((status, e)) => runner.finish(*status, &Bytes::from(e.message.clone())),
    }
}

/// See [`Conn::start`].
fn start_in(set: &mut JoinSet<()>, fut: impl Future<Output = ()> + Send + 'static) {
    {
        let mut fut = Box::pin(fut);
        // Polled once with a no-op waker: a future that returns `Pending`
        // has registered interest in whatever it waits for, and is polled
        // again, with its task's waker, once spawned.
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        if fut.as_mut().poll(&mut cx).is_pending() {
            set.spawn(fut);
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
    if let Err(e) = outbox
        .seal(Kind::Reply, None, |b| load::encode(&load, b))
        .await
    {
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
        ReplyStatus::Overloaded => "overloaded",
    }
}

fn truncated(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
