//! Handlers and the router that dispatches requests to them by method name.
use super::hash::{NameMap, NameSet};
use crate::wire::load::ReplyStatus;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::future::poll_fn;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Instant;

/// One authenticated request as a handler sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The method called (shared with the router: no copy per request).
    pub method: Arc<str>,
    /// The body: a zero-copy slice of the decrypted envelope.
    pub body: Bytes,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
    /// Who sent it: a socket address, or a ZeroMQ identity.
    pub peer: crate::transport::Peer,
    /// The connection it came in on (a master keeps it to publish to the
    /// minion that registered over it). Unset for jobs a minion runs.
    pub link: super::PeerLink,
    /// Who the handshake authenticated (identity mode; `None` with a
    /// shared key, where holding the key is the only credential).
    pub principal: Option<std::sync::Arc<super::Principal>>,
}

impl Request {
    /// Decodes the body as MessagePack into `T`.
    pub fn decode<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, HandlerError> {
        rmp_serde::from_slice(&self.body)
            .map_err(|e| HandlerError::new(format!("bad argument: {e}")))
    }
}

/// A handler's failure, sent to the caller as a remote error. Its message
/// is also recorded on the server span, so it must hold no secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    pub message: String,
    /// Refused without running (the caller gets `Error::Overloaded`).
    overloaded: bool,
}

impl HandlerError {
    /// An error with this message (the caller gets `Error::Remote`).
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            overloaded: false,
        }
    }

    /// The request was refused without doing its work (a limit was
    /// reached, or the server is shutting down): the caller gets
    /// `Error::Overloaded` and may retry later, elsewhere or on this
    /// server once it is back.
    pub fn overloaded(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            overloaded: true,
        }
    }

    /// Whether this is an [`overloaded`](Self::overloaded) refusal.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

pub(crate) type HandlerFn =
    dyn Fn(Request) -> BoxFuture<'static, Result<Bytes, HandlerError>> + Send + Sync;

pub(crate) type GuardFn = dyn Fn(&Request) -> Result<(), HandlerError> + Send + Sync;

/// Method name → handler, and an optional guard every request passes first.
#[derive(Clone, Default)]
pub struct Router {
    routes: NameMap<Route>,
    guard: Option<Arc<GuardFn>>,
    /// Methods still served while the server drains at shutdown.
    drain_allowed: NameSet,
    /// Set by the server that owns this router when it starts draining
    /// (each server gives its router a flag of its own).
    draining: Arc<AtomicBool>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// Registers `handler` for `method` (replacing any earlier one).
    pub fn route<F, Fut>(mut self, method: &str, handler: F) -> Router
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, HandlerError>> + Send + 'static,
    {
        let route = Route {
            name: Arc::from(method),
            handler: Arc::new(move |r| Box::pin(handler(r))),
        };
        self.routes.insert(method.to_owned(), route);
        self
    }

    /// Runs `guard` before every handler: an `Err` is sent to the caller as
    /// a permission error and the handler does not run (an ACL).
    pub fn guard<G>(mut self, guard: G) -> Router
    where
        G: Fn(&Request) -> Result<(), HandlerError> + Send + Sync + 'static,
    {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// Keeps serving `method` while the server drains at shutdown. Every
    /// other method is then refused without running (the caller gets
    /// `Error::Overloaded`). For calls that work already in flight waits
    /// on, such as a minion's return of a job being published.
    pub fn serve_while_draining(mut self, method: &str) -> Router {
        self.drain_allowed.insert(method.to_owned());
        self
    }

    /// Gives this router a draining flag of its own (a server owns it).
    pub(crate) fn own_drain_flag(mut self) -> Router {
        self.draining = Arc::new(AtomicBool::new(false));
        self
    }

    /// From now on, refuse every method not marked
    /// [`serve_while_draining`](Self::serve_while_draining).
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn check(&self, req: &Request) -> Result<(), HandlerError> {
        match &self.guard {
            Some(g) => g(req),
            None => Ok(()),
        }
    }

    /// The methods served, sorted.
    pub fn methods(&self) -> Vec<&str> {
        let mut m: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        m.sort_unstable();
        m
    }

    /// The route of `method`. While draining, a method not marked
    /// [`serve_while_draining`](Self::serve_while_draining) gets a handler
    /// that refuses it (unknown methods stay unknown).
    pub(crate) fn get(&self, method: &str) -> Option<Route> {
        let route = self.routes.get(method)?;
        if self.draining.load(Ordering::Acquire) && !self.drain_allowed.contains(method) {
            return Some(Route {
                name: route.name.clone(),
                handler: refuse_draining().clone(),
            });
        }
        Some(route.clone())
    }
}

/// A method's name and handler, as registered.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    pub(crate) handler: Arc<HandlerFn>,
}

/// The handler that answers requests arriving while the server drains.
fn refuse_draining() -> &'static Arc<HandlerFn> {
    static REFUSE: OnceLock<Arc<HandlerFn>> = OnceLock::new();
    REFUSE.get_or_init(|| {
        Arc::new(|_req| {
            Box::pin(async {
                Err(HandlerError::overloaded(
                    "the server is shutting down: the request was not run",
                ))
            })
        })
    })
}

/// Runs a handler to its deadline. A panic becomes an error reply rather
/// than a silent loss the caller would only notice at its timeout.
pub(crate) async fn run_handler(
    fut: impl Future<Output = Result<Bytes, HandlerError>>,
    deadline: Option<Instant>,
) -> Result<Bytes, (ReplyStatus, HandlerError)> {
    let mut fut = std::pin::pin!(AssertUnwindSafe(fut).catch_unwind());
    let caught = match deadline {
        // Polled once first: a handler that answers at once (most do)
        // costs no timer.
        Some(at) => match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
            Poll::Ready(r) => r,
            Poll::Pending => match tokio::time::timeout_at(at.into(), fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err((
                        ReplyStatus::DeadlineExceeded,
                        HandlerError::new("deadline exceeded"),
                    ))
                }
            },
        },
        None => fut.await,
    };
    match caught {
        Ok(result) => result.map_err(|e| {
            let status = if e.overloaded {
                ReplyStatus::Overloaded
            } else {
                ReplyStatus::Error
            };
            (status, e)
        }),
        Err(_) => Err((
            ReplyStatus::Error,
            HandlerError::new("the handler panicked"),
        )),
    }
}
