//! The client: `call(method, body)` with a deadline; many calls in flight on
//! one connection, matched to replies by id; reconnection with backoff.
use super::config::{parse_url, ChannelConfig, ReconnectPolicy};
use super::connection::Connection;
use super::publish::Published;
use crate::error::Error;
use crate::telemetry::{ClientSpan, Outcome};
use crate::transport::Endpoint;
use crate::wire::load::{self, ReplyStatus, RequestLoad};
use crate::wire::Kind;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};

struct Inner {
    cfg: ChannelConfig,
    endpoint: Endpoint,
    /// The live connection; replaced when it ends and a call reconnects.
    current: Mutex<Option<Arc<Connection>>>,
    /// Serialises reconnect attempts; holds the backoff state.
    reconnect: tokio::sync::Mutex<Backoff>,
    next_id: AtomicU64,
    /// Retry keys are this client's random salt and a call number.
    retry_salt: [u8; 16],
    /// Attempts sent after a call's first (see `ChannelConfig::tries`).
    retries: AtomicU64,
    permits: Semaphore,
    /// Where publishes arriving on the connection go (a minion's client).
    publishes: Option<mpsc::Sender<Published>>,
}

/// A connection to a sealrpc server. Clone it freely: clones share the
/// connection. The connection closes when the last clone is dropped.
///
/// When the connection ends (the server restarted, say), calls in flight
/// fail with a typed error and the next call reconnects, with jittered
/// exponential backoff between failed attempts, within its own deadline
/// (see [`ChannelConfig::reconnect`]).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to `tcp://HOST:PORT` or `ws://HOST:PORT/PATH`.
    /// Gives up after the configured call timeout.
    pub async fn connect(url: &str, cfg: ChannelConfig) -> Result<Client, Error> {
        Client::open(url, cfg, None).await
    }

    /// Connects as a minion: jobs the master publishes down this connection
    /// (TCP, WebSocket) arrive, authenticated, on the returned receiver,
    /// across reconnects. Receive promptly: while `queue` jobs wait, the
    /// connection stops reading (replies included).
    pub async fn connect_with_publishes(
        url: &str,
        cfg: ChannelConfig,
        queue: usize,
    ) -> Result<(Client, mpsc::Receiver<Published>), Error> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Ok((Client::open(url, cfg, Some(tx)).await?, rx))
    }

    async fn open(
        url: &str,
        cfg: ChannelConfig,
        publishes: Option<mpsc::Sender<Published>>,
    ) -> Result<Client, Error> {
        let endpoint = parse_url(url)?;
        let connecting = Connection::open(&endpoint, &cfg, publishes.clone());
        let conn = match tokio::time::timeout(cfg.timeout, connecting).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::ConnectTimeout(cfg.timeout)),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint,
                current: Mutex::new(Some(Arc::new(conn))),
                reconnect: tokio::sync::Mutex::new(Backoff::default()),
                next_id: AtomicU64::new(1),
                retry_salt: super::config::random_salt(),
                retries: AtomicU64::new(0),
                permits: Semaphore::new(cfg.max_in_flight.max(1)),
                publishes,
                cfg,
            }),
        })
    }

    /// The server's address (of the current connection, if there is one).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.current().map(|c| c.peer)
    }

    /// The server as the handshake authenticated it (identity mode), for
    /// the current connection.
    pub fn server(&self) -> Option<Arc<super::Principal>> {
        self.current().and_then(|c| c.principal.clone())
    }

    /// Completes when the current connection has ended (the server closed
    /// it, restarted, or refused an envelope). The next call reconnects.
    pub async fn disconnected(&self) {
        if let Some(c) = self.current() {
            c.waiting.ended().await;
        }
    }

    /// Attempts this client (and its clones) sent again after a call's
    /// first, since it was created (see [`ChannelConfig::tries`]).
    pub fn retries_sent(&self) -> u64 {
        self.inner.retries.load(Ordering::Relaxed)
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
        let span = self.inner.cfg.telemetry.as_ref().map(|t| {
            let conn = self.current();
            t.client_span(method, conn.as_ref().and_then(|c| c.peer_attrs.as_ref()))
        });
        // One deadline covers the whole call: waiting for a permit, for
        // outbox space (backpressure) and for the reply. Each of those
        // waits is bounded by it; none costs a timer unless it has to wait
        // (the reply's wait is bounded by the connection's deadline sweep).
        let deadline = far_deadline(timeout);
        let result = self
            .call_tries(method, &body, deadline, span.as_ref())
            .await
            .map_err(|fail| match fail {
                Fail::Error(e) => e,
                Fail::Expired => Error::Timeout {
                    method: method.to_owned(),
                    after: timeout,
                },
            });
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

    /// The call's attempts (see [`ChannelConfig::tries`]).
    async fn call_tries(
        &self,
        method: &str,
        body: &[u8],
        deadline: tokio::time::Instant,
        span: Option<&ClientSpan>,
    ) -> Result<Bytes, Fail> {
        let tries = self.inner.cfg.tries.max(1);
        if tries == 1 {
            return self
                .call_inner(method, body, deadline, deadline, span, &[])
                .await;
        }
        let mut key = [0u8; 24];
        key[..16].copy_from_slice(&self.inner.retry_salt);
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        key[16..].copy_from_slice(&n.to_le_bytes());
        let per_try = deadline.saturating_duration_since(tokio::time::Instant::now()) / tries;
        let mut last = None;
        for attempt in 1..=tries {
            let this_try = if attempt == tries {
                deadline
            } else {
                (tokio::time::Instant::now() + per_try).min(deadline)
            };
            if attempt > 1 {
                self.inner.retries.fetch_add(1, Ordering::Relaxed);
            }
            match self
                .call_inner(method, body, deadline, this_try, span, &key)
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(Fail::Error(e)) if retryable(&e) => {
                    if matches!(e, Error::Overloaded(_)) {
                        // The server did not run it: wait out this try.
                        tokio::time::sleep_until(this_try).await;
                    }
                    last = Some(e);
                }
                Err(Fail::Error(e)) => return Err(Fail::Error(e)),
                Err(Fail::Expired) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Err(last.map_or(Fail::Expired, Fail::Error))
    }

    /// One attempt: the server is told `deadline`; this attempt waits
    /// until `until` at most ([`Fail::Expired`]).
    async fn call_inner(
        &self,
        method: &str,
        body: &[u8],
        deadline: tokio::time::Instant,
        until: tokio::time::Instant,
        span: Option<&ClientSpan>,
        retry: &[u8],
    ) -> Result<Bytes, Fail> {
        let inner = &*self.inner;
        let _permit = match inner.permits.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(Error::ConnectionClosed.into()),
            Err(TryAcquireError::NoPermits) => {
                match tokio::time::timeout_at(until, inner.permits.acquire()).await {
                    Ok(p) => p.map_err(|_| Error::ConnectionClosed)?,
                    Err(_) => return Err(Fail::Expired),
                }
            }
        };
        let conn = self.connection(until).await?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        conn.waiting.register(id, until)?;
        let mut guard = PendingGuard {
            conn: &conn,
            id,
            done: false,
        };
        // The only place a trace context enters a request load.
        let trace = super::publish::TraceCarrier::of(span);
        let mut load = RequestLoad {
            retry,
            id,
            method,
            body,
            deadline_ms: 0,
            trace: trace.pairs(),
        };
        let sealed = conn
            .outbox
            .seal(Kind::Request, Some(until), |b| {
                // The time left when the request is actually sealed (after
                // any backpressure wait), rounded up: 0 means "no deadline".
                load.deadline_ms = deadline_ms(deadline);
                load::encode(&load, b)
            })
            .await;
        match sealed {
            Ok(()) => {}
            // No room in the outbox until `until`.
            Err(Error::Busy) => return Err(Fail::Expired),
            // The writer failed (the peer closed): why is for the read
            // task to find (an alert the peer sent before closing, say).
            Err(Error::ConnectionClosed) => {
                let _ = tokio::time::timeout_at(until, conn.waiting.ended()).await;
                return Err(conn
                    .waiting
                    .closed_reason()
                    .unwrap_or(Error::ConnectionClosed)
                    .into());
            }
            Err(e) => return Err(e.into()),
        }
        // The read task answers, or fails every call when the connection
        // ends; a call that ends without either was dropped by the
        // deadline sweep (see `waiting`).
        let reply = conn.waiting.reply(id).await;
        // Answered or expired: the entry is gone already.
        guard.done = true;
        let (status, body) = match reply {
            None => return Err(Fail::Expired),
            Some(reply) => reply?,
        };
        Ok(reply_result(method, status, body)?)
    }
}

/// A reply's status as the call's result.
fn reply_result(method: &str, status: ReplyStatus, body: Bytes) -> Result<Bytes, Error> {
    match status {
        ReplyStatus::Ok => Ok(body),
        ReplyStatus::Error => Err(Error::Remote(String::from_utf8_lossy(&body).into_owned())),
        ReplyStatus::NoSuchMethod => Err(Error::NoSuchMethod(method.to_owned())),
        ReplyStatus::DeadlineExceeded => Err(Error::DeadlineExceeded),
        ReplyStatus::PermissionDenied => Err(Error::PermissionDenied(
            String::from_utf8_lossy(&body).into_owned(),
        )),
        ReplyStatus::Overloaded => Err(Error::Overloaded(
            String::from_utf8_lossy(&body).into_owned(),
        )),
    }
}

/// How an attempt ends when it does not end with a reply.
enum Fail {
    Error(Error),
    /// Its wait ended (its `until`) before a reply came.
    Expired,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Error(e)
    }
}

impl Client {
    fn current(&self) -> Option<Arc<Connection>> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The live connection, reconnecting if it has ended (and reconnecting
    /// is on), within `deadline`.
    async fn connection(&self, deadline: tokio::time::Instant) -> Result<Arc<Connection>, Fail> {
        let dead = match self.current() {
            Some(c) if !c.is_closed() => return Ok(c),
            other => other,
        };
        match tokio::time::timeout_at(deadline, self.reconnect(dead, deadline)).await {
            Ok(r) => r.map_err(Fail::Error),
            Err(_) => Err(Fail::Expired),
        }
    }

    async fn reconnect(
        &self,
        dead: Option<Arc<Connection>>,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<Connection>, Error> {
        let Some(policy) = self.inner.cfg.reconnect else {
            // Reconnecting is off: report why the connection ended (its
            // read task may still be finishing: the reason comes from it).
            if let Some(c) = &dead {
                let _ = tokio::time::timeout_at(deadline, c.waiting.ended()).await;
            }
            return Err(dead
                .and_then(|c| c.waiting.closed_reason())
                .unwrap_or(Error::ConnectionClosed));
        };
        let mut backoff = self.inner.reconnect.lock().await;
        loop {
            // Another call may have reconnected while this one waited.
            if let Some(c) = self.current().filter(|c| !c.is_closed()) {
                return Ok(c);
            }
            if let Some(at) = backoff.next_attempt {
                if at >= deadline {
                    return Err(Error::ConnectionClosed);
                }
                tokio::time::sleep_until(at).await;
            }
            let attempt = tokio::time::timeout_at(
                deadline,
                Connection::open(
                    &self.inner.endpoint,
                    &self.inner.cfg,
                    self.inner.publishes.clone(),
                ),
            );
            match attempt.await {
                Ok(Ok(conn)) => {
                    backoff.reset();
                    let conn = Arc::new(conn);
                    *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(conn.clone());
                    return Ok(conn);
                }
                Ok(Err(e)) => {
                    backoff.failed(&policy);
                    tracing::debug!("reconnect to {:?} failed: {e}", self.inner.endpoint);
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                }
                Err(_) => return Err(Error::ConnectionClosed),
            }
        }
    }
}

/// Reconnect backoff state: the first attempt after a loss is immediate;
/// after each failure the wait doubles from `initial` up to `max`, and each
/// wait is drawn uniformly from its upper half (jitter), so many clients
/// losing one master do not reconnect in lockstep.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<tokio::time::Instant>,
}

impl Backoff {
    fn reset(&mut self) {
        *self = Backoff::default();
    }

    fn failed(&mut self, policy: &ReconnectPolicy) {
        let exp = policy.initial.saturating_mul(1u32 << self.failures.min(16));
        let cap = exp.min(policy.max);
        let jittered = cap.mul_f64(0.5 + rand::random::<f64>() * 0.5);
        self.failures = self.failures.saturating_add(1);
        self.next_attempt = Some(tokio::time::Instant::now() + jittered);
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
    conn: &'a Connection,
    id: u64,
    /// The entry was removed by whoever ended the wait.
    done: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.waiting.remove(self.id);
        }
    }
}

/// Errors after which the call may not have run, or ran and its reply was
/// lost: another attempt (same retry key) is safe.
fn retryable(e: &Error) -> bool {
    matches!(
        e,
        Error::ConnectionClosed
            | Error::Transport(_)
            | Error::Wire(_)
            | Error::ConnectTimeout(_)
            | Error::HandshakeTimeout(_)
            | Error::Overloaded(_)
    )
}

pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "timeout",
        Error::Remote(_) => "remote_error",
        Error::NoSuchMethod(_) => "no_such_method",
        Error::DeadlineExceeded => "deadline_exceeded",
        Error::Wire(_) => "envelope",
        Error::ConnectionClosed | Error::Transport(_) => "transport",
        Error::PermissionDenied(_) => "permission_denied",
        Error::Overloaded(_) => "overloaded",
        _ => "other",
    }
}
