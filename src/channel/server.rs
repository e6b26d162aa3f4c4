//! The server: accepts connections, opens and authenticates each request,
//! extracts its trace context, and runs its handler concurrently inside a
//! SERVER span. A bad envelope costs only its own connection.
use super::config::{parse_url, random_salt, ChannelConfig};
use super::handler::{HandlerError, Request, Router};
use super::outbox::Outbox;
use crate::error::{Error, WireError};
use crate::telemetry::Outcome;
use crate::wire::envelope::unix_ms;
use crate::wire::header::{alert_frame, AlertCode};
use crate::wire::load::{self, ReplyLoad, ReplyStatus, RequestLoad};
use crate::wire::{Kind, Opener, Sealer, SessionRegistry};
use bytes::{Bytes, BytesMut};
use sealrpc_tcp::{FrameError, FrameReader, FrameWriter, Listener};
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
    listener: Listener,
    shared: Arc<Shared>,
    grace: Duration,
}

impl Server {
    /// Binds `tcp://HOST:PORT` (port 0 picks a free port).
    pub async fn bind(url: &str, router: Router, cfg: ChannelConfig) -> Result<Server, Error> {
        let listener = Listener::bind(parse_url(url)?, cfg.tcp()).await?;
        let registry = Arc::new(SessionRegistry::new(cfg.ttl_ms(), REGISTRY_CAPACITY));
        Ok(Server {
            listener,
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

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener
            .local_addr()
            .map_err(|e| Error::Transport(FrameError::Io(e)))
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish (up to the grace period) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((r, w, peer)) => {
                        conns.spawn(connection(r, w, peer, self.shared.clone(), stop_rx.clone()));
                    }
                    Err(e) => {
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
    mut reader: FrameReader,
    writer: FrameWriter,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let outbox = Outbox::new(Sealer::new(cfg.key.clone(), random_salt()), cfg.max_frame);
    let writer_task = tokio::spawn(outbox.clone().run_writer(writer));
    let mut opener = Opener::new(
        cfg.keyring.clone(),
        shared.registry.clone(),
        Kind::Request,
        cfg.ttl_ms(),
        cfg.max_frame,
    );
    let mut handlers = JoinSet::new();
    // Whether the peer is still there to receive replies when the loop ends.
    let peer_alive = loop {
        tokio::select! {
            _ = stop.changed() => break true,
            frame = reader.recv() => match frame {
                Ok(Some(frame)) => {
                    if let Err(e) = dispatch(frame, &mut opener, peer, &shared, &outbox, &mut handlers) {
                        tracing::warn!("closing connection from {peer}: {e}");
                        let code = match e {
                            WireError::BadLoad(_) | WireError::TooLarge { .. } => AlertCode::Malformed,
                            _ => AlertCode::Refused,
                        };
                        outbox.alert_and_close(&alert_frame(code));
                        break false;
                    }
                }
                Ok(None) => break false,
                Err(e) => {
                    tracing::warn!("closing connection from {peer}: {e}");
                    if matches!(e, FrameError::TooLarge { .. }) {
                        outbox.alert_and_close(&alert_frame(AlertCode::Malformed));
                    }
                    break false;
                }
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    };
    if !peer_alive {
        // Nobody can receive these replies: cancel the work (as a dropped
        // call is cancelled). On shutdown, in-flight handlers run on.
        handlers.abort_all();
    }
    while handlers.join_next().await.is_some() {}
    outbox.close();
    let _ = writer_task.await;
    opener.close(unix_ms());
}

/// Opens one frame and starts its handler. An `Err` closes the connection.
fn dispatch(
    mut frame: BytesMut,
    opener: &mut Opener,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    outbox: &Arc<Outbox>,
    handlers: &mut JoinSet<()>,
) -> Result<(), WireError> {
    let opened = opener.open(&mut frame, unix_ms())?;
    let plain = frame.freeze().slice(opened.load);
    let req: RequestLoad = load::decode(&plain)?;
    // The context is extracted only here, after the envelope authenticated.
    let span = shared
        .cfg
        .telemetry
        .as_ref()
        .map(|t| t.server_span(req.method, &req.trace.0, peer));
    let id = req.id;
    let Some(handler) = shared.router.get(req.method).cloned() else {
        let msg = format!("no such method: {}", truncated(req.method));
        if let Some(span) = span {
            span.end(Outcome::Failed {
                kind: "no_such_method",
                message: &msg,
            });
        }
        reply(outbox, id, ReplyStatus::NoSuchMethod, msg.as_bytes());
        return Ok(());
    };
    let deadline = (req.deadline_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(u64::from(req.deadline_ms)));
    let request = Request {
        method: req.method.to_owned(),
        body: plain.slice_ref(req.body),
        deadline,
        peer,
    };
    let outbox = outbox.clone();
    handlers.spawn(async move {
        let fut = run_handler(handler(request), deadline);
        let result = match &span {
            Some(span) => span.run(fut).await,
            None => fut.await,
        };
        let (status, body, outcome_kind) = match &result {
            Ok(body) => (ReplyStatus::Ok, &body[..], None),
            Err((status, e)) => (*status, e.message.as_bytes(), Some(status_kind(*status))),
        };
        if let Err(e) = outbox.seal(Kind::Reply, unix_ms(), |b| {
            load::encode(
                &ReplyLoad {
                    id,
                    status: status as u8,
                    body,
                },
                b,
            )
        }) {
            tracing::warn!("reply to {peer} not sent: {e}");
            if matches!(e, Error::Wire(WireError::TooLarge { .. })) {
                reply(
                    &outbox,
                    id,
                    ReplyStatus::Error,
                    b"reply too large for the frame limit",
                );
            }
        }
        if let Some(span) = span {
            span.end(match (&result, outcome_kind) {
                (Err((_, e)), Some(kind)) => Outcome::Failed {
                    kind,
                    message: &e.message,
                },
                _ => Outcome::Ok,
            });
        }
    });
    Ok(())
}

async fn run_handler(
    fut: impl Future<Output = Result<Bytes, HandlerError>>,
    deadline: Option<Instant>,
) -> Result<Bytes, (ReplyStatus, HandlerError)> {
    let result = match deadline {
        Some(at) => match tokio::time::timeout_at(at.into(), fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err((
                    ReplyStatus::DeadlineExceeded,
                    HandlerError::new("deadline exceeded"),
                ))
            }
        },
        None => fut.await,
    };
    result.map_err(|e| (ReplyStatus::Error, e))
}

fn reply(outbox: &Outbox, id: u64, status: ReplyStatus, body: &[u8]) {
    let sealed = outbox.seal(Kind::Reply, unix_ms(), |b| {
        load::encode(
            &ReplyLoad {
                id,
                status: status as u8,
                body,
            },
            b,
        )
    });
    if let Err(e) = sealed {
        tracing::debug!("reply not sent: {e}");
    }
}

fn status_kind(s: ReplyStatus) -> &'static str {
    match s {
        ReplyStatus::Ok => "ok",
        ReplyStatus::Error => "handler_error",
        ReplyStatus::NoSuchMethod => "no_such_method",
        ReplyStatus::DeadlineExceeded => "deadline_exceeded",
    }
}

fn truncated(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
