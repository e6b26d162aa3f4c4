//! The listener: TCP accept, then the WebSocket handshake in its own task.
use crate::{halves, handshake_error, shared::Conn, timed_out, WsConfig, WsError};
use crate::{WsReader, WsWriter};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::error::Error as TError;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// Handshakes in progress at most; beyond that, TCP accepting pauses until
/// one finishes (the kernel's backlog then pushes back).
const MAX_PENDING_HANDSHAKES: usize = 1024;

type Accepted = Result<(WsReader, WsWriter, SocketAddr), WsError>;

/// A bound listener yielding upgraded connections.
pub struct WsListener {
    tcp: TcpListener,
    cfg: Arc<WsConfig>,
    /// Handshakes run as tasks so that a slow client never blocks the
    /// others and a cancelled `accept` loses no connection.
    pending: Mutex<JoinSet<Accepted>>,
}

impl WsListener {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free port).
    pub async fn bind(addr: &str, cfg: WsConfig) -> Result<WsListener, WsError> {
        Ok(WsListener {
            tcp: TcpListener::bind(addr).await?,
            cfg: Arc::new(cfg),
            pending: Mutex::new(JoinSet::new()),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The next upgraded connection, with the peer's address.
    ///
    /// A connection whose handshake fails (wrong path, not a WebSocket
    /// upgrade, no request within [`WsConfig::handshake_timeout`], cut off) is
    /// returned as [`WsError::Handshake`]: it concerns that connection only,
    /// so keep accepting. `WsError::Io` comes from the TCP accept itself
    /// (for example, out of file descriptors). Handshakes go on while no
    /// `accept` is running; finished ones wait here. Cancel-safe.
    pub async fn accept(&self) -> Accepted {
        let mut pending = self.pending.lock().await;
        loop {
            tokio::select! {
                accepted = self.tcp.accept(), if pending.len() < MAX_PENDING_HANDSHAKES => {
                    let (stream, peer) = accepted?;
                    pending.spawn(upgrade(stream, peer, self.cfg.clone()));
                }
                Some(done) = pending.join_next(), if !pending.is_empty() => {
                    return done.unwrap_or_else(|e| {
                        Err(WsError::Handshake(format!("the handshake task failed: {e}")))
                    });
                }
            }
        }
    }
}

/// The server side of one handshake.
async fn upgrade(stream: TcpStream, peer: SocketAddr, cfg: Arc<WsConfig>) -> Accepted {
    stream
        .set_nodelay(true)
        .map_err(|e| WsError::Handshake(format!("setting TCP_NODELAY: {e}")))?;
    let (r, w) = server_handshake(Conn::new(stream), &cfg).await?;
    Ok((r, w, peer))
}

/// The server side of the handshake on `conn`, within the timeout.
pub(crate) async fn server_handshake(
    conn: Conn,
    cfg: &WsConfig,
) -> Result<(WsReader, WsWriter), WsError> {
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(
        conn,
        OnlyPath(&cfg.path),
        Some(cfg.tungstenite()),
    );
    let ws = tokio::time::timeout(cfg.handshake_timeout, handshake)
        .await
        .map_err(|_| timed_out(cfg.handshake_timeout))?
        .map_err(|e| match e {
            // Our own refusal: say why without quoting the request.
            TError::Http(resp) => WsError::Handshake(format!(
                "refused with HTTP {}: the request was not for {}",
                resp.status(),
                cfg.path
            )),
            other => handshake_error(other),
        })?;
    Ok(halves(ws, cfg))
}

/// The handshake callback: upgrades requests for one path, 404 for others.
struct OnlyPath<'a>(&'a str);

impl Callback for OnlyPath<'_> {
    fn on_request(self, req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
        if req.uri().path() == self.0 {
            return Ok(resp);
        }
        let mut refusal = ErrorResponse::new(None);
        *refusal.status_mut() = StatusCode::NOT_FOUND;
        Err(refusal)
    }
}
