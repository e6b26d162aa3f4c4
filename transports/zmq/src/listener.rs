//! The listener: a bound ROUTER whose task yields virtual connections.
use crate::pump::{self, Accepted};
use crate::{ZmqConfig, ZmqError};
use tokio::sync::{mpsc, Mutex};
use zeromq::{RouterSocket, Socket};

/// A bound ROUTER socket yielding one virtual connection per peer identity.
/// Dropping it closes the socket and ends every connection it accepted
/// (their readers and writers get [`ZmqError::Closed`]).
pub struct ZmqListener {
    endpoint: String,
    /// Peers connect to the gate, which relays to the ROUTER on loopback.
    _gate: crate::gate::Gate,
    accepted: Mutex<mpsc::Receiver<Accepted>>,
}

impl std::fmt::Debug for ZmqListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqListener")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl ZmqListener {
    /// Binds a ROUTER to `endpoint` (`tcp://HOST:PORT`; port 0 picks a free
    /// port) and starts its task.
    pub async fn bind(endpoint: &str, cfg: ZmqConfig) -> Result<ZmqListener, ZmqError> {
        let mut socket = RouterSocket::new();
        let monitor = socket.monitor();
        let (endpoint, gate) =
            crate::bind_gated(&mut socket, endpoint, cfg.gate_policy(true)).await?;
        Ok(ZmqListener {
            endpoint,
            _gate: gate,
            accepted: Mutex::new(pump::spawn_server(socket, monitor, &cfg)),
        })
    }

    /// The bound endpoint, with the real port when bound to port 0
    /// (`tcp://127.0.0.1:PORT`).
    pub fn local_endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The next virtual connection: made when a DEALER with an identity not
    /// seen before completes its ZMTP handshake (or, should that event be
    /// lost, sends its first frame), with that identity in hex. At most
    /// [`ACCEPT_BACKLOG`] connections wait here; a new peer beyond that is
    /// disconnected. `Closed` if the socket task stopped. Cancel-safe.
    ///
    /// [`ACCEPT_BACKLOG`]: crate::ACCEPT_BACKLOG
    pub async fn accept(&self) -> Result<Accepted, ZmqError> {
        let mut accepted = self.accepted.lock().await;
        accepted.recv().await.ok_or(ZmqError::Closed)
    }

    /// Closes the listener, as dropping it does (every virtual connection
    /// ends), and returns once its port is free to bind again: a dropped
    /// listener's port is released by a task, shortly after.
    pub async fn close(self) {
        let ZmqListener { _gate: gate, .. } = self;
        gate.close().await;
    }
}
