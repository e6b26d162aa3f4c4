//! The client: `call(method, body)` with a deadline; many calls in flight on
//! one connection, matched to replies by id.
use super::config::{parse_url, random_salt, ChannelConfig};
use super::outbox::Outbox;
use crate::context;
use crate::error::{Error, WireError};
use crate::telemetry::{ClientSpan, Outcome};
use crate::transport::{self, FrameRecv};
use crate::wire::envelope::unix_ms;
use crate::wire::load::{self, Carrier, ReplyLoad, ReplyStatus, RequestLoad};
use crate::wire::{Kind, Opener, Sealer, SealerLimits, SessionRegistry};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

type ReplyResult = Result<(ReplyStatus, Bytes), Error>;

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<ReplyResult>>,
    /// Set once the connection is gone: `Some(reason)`.
    closed: Option<Option<WireError>>,
}

struct Shared {
    pending: Mutex<Pending>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    next_id: AtomicU64,
    permits: Semaphore,
    cfg: ChannelConfig,
    peer: SocketAddr,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.outbox.close();
    }
}

/// A connection to a sealrpc server. Clone it freely: clones share the
/// connection. The connection closes when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to `tcp://HOST:PORT`.
    /// Gives up after the configured call timeout.
    pub async fn connect(url: &str, cfg: ChannelConfig) -> Result<Client, Error> {
        let endpoint = parse_url(url)?;
        let connecting = transport::connect(&endpoint, cfg.max_frame);
        let (reader, writer, peer) = match tokio::time::timeout(cfg.timeout, connecting).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::ConnectTimeout(cfg.timeout)),
        };
        let salt = random_salt();
        let outbox = Outbox::new(Sealer::new(cfg.key.clone(), salt), cfg.max_frame);
        tokio::spawn(outbox.clone().run_writer(writer));
        let registry = Arc::new(SessionRegistry::new(cfg.ttl_ms(), 64));
        let mut opener = Opener::new(
            cfg.keyring.clone(),
            registry,
            Kind::Reply,
            cfg.ttl_ms(),
            cfg.max_frame,
        );
        // Replies are bound to this connection's first request session.
        opener.bind(salt);
        opener.require_rekey_after(SealerLimits::default().soft);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
        });
        tokio::spawn(read_loop(
            reader,
            peer,
            opener,
            shared.clone(),
            outbox.clone(),
        ));
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                outbox,
                next_id: AtomicU64::new(1),
                permits: Semaphore::new(cfg.max_in_flight.max(1)),
                cfg,
                peer,
            }),
        })
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// Calls `method` with `body`, waiting at most the configured timeout.
    pub async fn call(&self, method: &str, body: Bytes) -> Result<Bytes, Error> {
        self.call_with_timeout(method, body, self.inner.cfg.timeout)
            .await
    }

    /// Calls `method` with a MessagePack-encoded `arg`, decoding the result.
    pub async fn call_value<A, R>(&self, method: &str, arg: &A) -> Result<R, Error>
    where
        A: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        let body = rmp_serde::to_vec(arg).map_err(|e| Error::Body(e.to_string()))?;
        let reply = self.call(method, body.into()).await?;
        rmp_serde::from_slice(&reply).map_err(|e| Error::Body(e.to_string()))
    }

    /// Calls `method`; the server is told the deadline and the call fails
    /// with [`Error::Timeout`] if no reply comes within `timeout`.
    pub async fn call_with_timeout(
        &self,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let span = self
            .inner
            .cfg
            .telemetry
            .as_ref()
            .map(|t| t.client_span(method, Some(self.inner.peer)));
        // One deadline covers the whole call: waiting for a permit, for
        // outbox space (backpressure) and for the reply.
        let deadline = far_deadline(timeout);
        let call = self.call_inner(method, &body, deadline, span.as_ref());
        let result = match tokio::time::timeout_at(deadline, call).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                method: method.to_owned(),
                after: timeout,
            }),
        };
        if let Some(span) = span {
            match &result {
                Ok(_) => span.end(Outcome::Ok),
                Err(e) => span.end(Outcome::Failed {
                    kind: error_kind(e),
                    message: &e.to_string(),
                }),
            }
        }
        result
    }

    async fn call_inner(
        &self,
        method: &str,
        body: &[u8],
        deadline: tokio::time::Instant,
        span: Option<&ClientSpan>,
    ) -> Result<Bytes, Error> {
        let inner = &*self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| Error::ConnectionClosed)?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = inner.shared.lock();
            if let Some(reason) = &p.closed {
                return Err(closed_error(reason));
            }
            p.waiting.insert(id, tx);
        }
        let _guard = PendingGuard {
            shared: &inner.shared,
            id,
        };
        // The only place a trace context enters a load.
        let mut trace = Vec::new();
        if let Some((parent, state)) = span.and_then(ClientSpan::w3c) {
            trace.push((context::TRACEPARENT.to_owned(), parent.to_header()));
            if !state.is_empty() {
                trace.push((context::TRACESTATE.to_owned(), state));
            }
        }
        let mut load = RequestLoad {
            id,
            method,
            body,
            deadline_ms: 0,
            trace: Carrier(
                trace
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
        };
        inner
            .outbox
            .seal(Kind::Request, |b| {
                // The time left when the request is actually sealed (after
                // any backpressure wait), rounded up: 0 means "no deadline".
                load.deadline_ms = deadline_ms(deadline);
                load::encode(&load, b)
            })
            .await?;
        let (status, body) = match rx.await {
            Err(_) => return Err(Error::ConnectionClosed),
            Ok(reply) => reply?,
        };
        match status {
            ReplyStatus::Ok => Ok(body),
            ReplyStatus::Error => Err(Error::Remote(String::from_utf8_lossy(&body).into_owned())),
            ReplyStatus::NoSuchMethod => Err(Error::NoSuchMethod(method.to_owned())),
            ReplyStatus::DeadlineExceeded => Err(Error::DeadlineExceeded),
        }
    }
}

/// `now + timeout`, capped at about a century (`Duration::MAX` means "wait
/// as long as it takes" and must not overflow the clock).
fn far_deadline(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Milliseconds until `deadline`, at least 1, at most `u32::MAX`.
fn deadline_ms(deadline: tokio::time::Instant) -> u32 {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    left.as_millis().clamp(1, u128::from(u32::MAX)) as u32
}

/// Removes a call's pending entry however the call ends (reply, timeout,
/// or the caller dropping the future).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().waiting.remove(&self.id);
    }
}

fn closed_error(reason: &Option<WireError>) -> Error {
    match reason {
        Some(e) => Error::Wire(e.clone()),
        None => Error::ConnectionClosed,
    }
}

pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "timeout",
        Error::Remote(_) => "remote_error",
        Error::NoSuchMethod(_) => "no_such_method",
        Error::DeadlineExceeded => "deadline_exceeded",
        Error::Wire(_) => "envelope",
        Error::ConnectionClosed | Error::Transport(_) => "transport",
        _ => "other",
    }
}

async fn read_loop(
    mut reader: impl FrameRecv,
    peer: SocketAddr,
    mut opener: Opener,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
) {
    let reason = loop {
        let mut frame = match reader.recv().await {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => {
                tracing::debug!("client read: {e}");
                break None;
            }
        };
        let opened = match opener.open(&mut frame, unix_ms()) {
            Ok(o) => o,
            Err(e) => break Some(e),
        };
        let frame = frame.freeze();
        let plain = frame.slice(opened.load);
        let reply = match load::decode::<ReplyLoad>(&plain)
            .and_then(|r| Ok((r.id, ReplyStatus::from_u8(r.status)?, r.body)))
        {
            Ok((id, status, body)) => (id, status, plain.slice_ref(body)),
            Err(e) => break Some(e),
        };
        let waiter = shared.lock().waiting.remove(&reply.0);
        if let Some(tx) = waiter {
            let _ = tx.send(Ok((reply.1, reply.2)));
        }
    };
    if let Some(e) = &reason {
        // Every pending and later call returns this error; log it only at debug.
        tracing::debug!("closing connection to {peer}: {e}");
    }
    outbox.close();
    opener.close(unix_ms());
    let waiting = {
        let mut p = shared.lock();
        p.closed = Some(reason.clone());
        std::mem::take(&mut p.waiting)
    };
    for (_, tx) in waiting {
        let _ = tx.send(Err(closed_error(&reason)));
    }
}
