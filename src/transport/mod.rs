//! The frame-transport interface the channel drives, and the transports
//! behind it. A transport moves opaque frames (each one sealed envelope);
//! it knows nothing of keys, loads or traces, and the channel knows nothing
//! of sockets: it sees only [`FrameRecv`] and [`FrameSend`].
//!
//! Outgoing frames are batched by the channel in one buffer, each frame as
//! `u32 big-endian length ‖ payload` (built with [`push_frame`]). For TCP
//! that is already the wire format, so a batch is written as is.
pub mod pubsub;
mod tcp;
mod ws;
mod zmq;

use bytes::BytesMut;
use std::future::Future;
use std::net::SocketAddr;

pub use tcp::TcpTransport;

/// Default maximum frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = sealrpc_tcp::DEFAULT_MAX_FRAME;

/// Default bound of a transport's own handshake on an accepted connection
/// (WebSocket upgrade, ZMTP greeting): 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: std::time::Duration = sealrpc_ws::HANDSHAKE_TIMEOUT;

/// Transport failures, whatever the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    UnexpectedEof,
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// Whether the error concerns one connection only (a failed handshake)
    /// rather than the listener: a server keeps accepting at once.
    pub fn concerns_one_connection(&self) -> bool {
        matches!(
            self,
            TransportError::Handshake(_) | TransportError::Protocol(_)
        )
    }
}

/// The receiving half of a connection.
pub trait FrameRecv: Send + 'static {
    /// The next frame; `Ok(None)` on a clean end of stream. Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Result<Option<BytesMut>, TransportError>> + Send;
}

/// The sending half of a connection.
pub trait FrameSend: Send + 'static {
    /// Sends every frame in `batch` (built with [`push_frame`]) and leaves
    /// it empty.
    fn send_batch(
        &mut self,
        batch: &mut BytesMut,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Graceful close: everything sent, then end of stream.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Appends one frame to a batch, its payload written in place by `fill`
/// (so the channel seals straight into the outgoing buffer). On failure,
/// or a payload over `max_frame`, the batch is left as it was.
pub fn push_frame(
    batch: &mut BytesMut,
    max_frame: usize,
    fill: impl FnOnce(&mut BytesMut) -> Result<(), crate::Error>,
) -> Result<(), crate::Error> {
    sealrpc_tcp::push_frame_with(batch, max_frame, fill)
}

/// Bytes of the length prefix of each frame in a batch.
pub(crate) const PREFIX_LEN: usize = 4;

/// Splits a batch (built with [`push_frame`]) into its frames without
/// copying, leaving the batch empty: for message-based transports.
pub(crate) fn split_batch(batch: &mut BytesMut) -> Result<Vec<bytes::Bytes>, TransportError> {
    use bytes::Buf;
    let mut frames = batch.split().freeze();
    let mut out = Vec::new();
    while frames.len() >= PREFIX_LEN {
        let len = u32::from_be_bytes([frames[0], frames[1], frames[2], frames[3]]) as usize;
        frames.advance(PREFIX_LEN);
        if frames.len() < len {
            return Err(TransportError::Protocol(
                "truncated frame in a batch".into(),
            ));
        }
        out.push(frames.split_to(len));
    }
    Ok(out)
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A socket address (TCP, WebSocket, a ZeroMQ server as seen by a client).
    Addr(SocketAddr),
    /// A ZeroMQ routing identity (hex), as a ROUTER sees its DEALER peers
    /// (shared: every request's [`Request`](crate::channel::Request) holds a copy).
    Identity(std::sync::Arc<str>),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Addr(a) => a.fmt(f),
            Peer::Identity(id) => write!(f, "zmq identity {id}"),
        }
    }
}

/// A parsed endpoint URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://HOST:PORT`
    Tcp(String),
    /// `ws://HOST:PORT/PATH` (the path defaults to `/sealrpc`).
    Ws { addr: String, path: String },
    /// `zmq://HOST:PORT` (ZMTP over TCP).
    Zmq(String),
}

impl Endpoint {
    /// Parses `tcp://HOST:PORT`, `ws://HOST:PORT[/PATH]` or `zmq://HOST:PORT`.
    pub fn parse(url: &str) -> Option<Endpoint> {
        if let Some(rest) = url.strip_prefix("tcp://") {
            return host_port(rest).then(|| Endpoint::Tcp(rest.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("zmq://") {
            return host_port(rest).then(|| Endpoint::Zmq(rest.to_owned()));
        }
        let rest = url.strip_prefix("ws://")?;
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/sealrpc"),
        };
        host_port(addr).then(|| Endpoint::Ws {
            addr: addr.to_owned(),
            path: path.to_owned(),
        })
    }
}

fn host_port(s: &str) -> bool {
    matches!(s.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
}

/// A bound listener on some transport.
pub enum Listener {
    Tcp(sealrpc_tcp::Listener),
    Ws {
        listener: sealrpc_ws::WsListener,
        path: String,
    },
    Zmq(sealrpc_zmq::ZmqListener),
}

impl Listener {
    /// Closes the listener and returns once its port is free to bind again
    /// (TCP and WebSocket listeners free it when dropped; a ZeroMQ one
    /// releases it from a task).
    pub async fn close(self) {
        if let Listener::Zmq(l) = self {
            l.close().await;
        }
    }

    /// Binds `endpoint`, with the default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub async fn bind(endpoint: &Endpoint, max_frame: usize) -> Result<Listener, TransportError> {
        Listener::bind_with(endpoint, max_frame, DEFAULT_HANDSHAKE_TIMEOUT).await
    }

    /// Binds `endpoint`. `handshake_timeout` bounds the transport's own
    /// handshake on every accepted connection, before the channel sees it:
    /// WebSocket's HTTP upgrade, ZeroMQ's ZMTP greeting and READY (TCP has
    /// none). A peer that connects and sends nothing, or trickles its
    /// handshake, is dropped then.
    pub async fn bind_with(
        endpoint: &Endpoint,
        max_frame: usize,
        handshake_timeout: std::time::Duration,
    ) -> Result<Listener, TransportError> {
        match endpoint {
            Endpoint::Tcp(addr) => Ok(Listener::Tcp(TcpTransport::bind(addr, max_frame).await?)),
            Endpoint::Ws { addr, path } => Ok(Listener::Ws {
                listener: ws::bind(addr, path, max_frame, handshake_timeout).await?,
                path: path.clone(),
            }),
            Endpoint::Zmq(addr) => Ok(Listener::Zmq(
                sealrpc_zmq::ZmqListener::bind(
                    &format!("tcp://{addr}"),
                    zmq::server_config(max_frame, handshake_timeout),
                )
                .await?,
            )),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        match self {
            Listener::Tcp(l) => Ok(l.local_addr()?),
            Listener::Ws { listener, .. } => Ok(listener.local_addr()?),
            Listener::Zmq(l) => {
                let ep = l.local_endpoint();
                ep.trim_start_matches("tcp://")
                    .parse()
                    .map_err(|_| TransportError::Protocol(format!("unexpected zmq endpoint {ep}")))
            }
        }
    }

    /// The URL a client connects to (the bound address with the scheme).
    pub fn local_url(&self) -> Result<String, TransportError> {
        let addr = self.local_addr()?;
        match self {
            Listener::Tcp(_) => Ok(format!("tcp://{addr}")),
            Listener::Ws { path, .. } => Ok(format!("ws://{addr}{path}")),
            Listener::Zmq(_) => Ok(format!("zmq://{addr}")),
        }
    }

    /// Accepts one connection. An `Err` for which
    /// [`TransportError::concerns_one_connection`] is true (a failed
    /// WebSocket handshake, say) says nothing about the listener: keep
    /// accepting at once.
    pub async fn accept(&self) -> Result<(AnyRecv, AnySend, Peer), TransportError> {
        match self {
            Listener::Tcp(l) => {
                let (r, w, peer) = l.accept().await?;
                Ok((AnyRecv::Tcp(r), AnySend::Tcp(w), Peer::Addr(peer)))
            }
            Listener::Ws { listener, .. } => {
                let (r, w, peer) = listener.accept().await?;
                Ok((AnyRecv::Ws(r), AnySend::Ws(w), Peer::Addr(peer)))
            }
            Listener::Zmq(l) => {
                let (r, w, identity) = l.accept().await?;
                Ok((
                    AnyRecv::Zmq(r),
                    AnySend::Zmq(w),
                    Peer::Identity(identity.into()),
                ))
            }
        }
    }
}

/// Connects to `endpoint`; also returns the peer's address.
pub async fn connect(
    endpoint: &Endpoint,
    max_frame: usize,
) -> Result<(AnyRecv, AnySend, SocketAddr), TransportError> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let (r, w, peer) = TcpTransport::connect(addr, max_frame).await?;
            Ok((AnyRecv::Tcp(r), AnySend::Tcp(w), peer))
        }
        Endpoint::Ws { addr, path } => {
            let (r, w, peer) = ws::connect(&format!("ws://{addr}{path}"), path, max_frame).await?;
            Ok((AnyRecv::Ws(r), AnySend::Ws(w), peer))
        }
        Endpoint::Zmq(addr) => {
            let peer = tokio::net::lookup_host(addr.as_str())
                .await?
                .next()
                .ok_or_else(|| {
                    TransportError::Protocol(format!("{addr} resolves to no address"))
                })?;
            let (r, w) =
                sealrpc_zmq::connect(&format!("tcp://{peer}"), zmq::config(max_frame)).await?;
            Ok((AnyRecv::Zmq(r), AnySend::Zmq(w), peer))
        }
    }
}

/// The receiving half of a connection on any transport.
pub enum AnyRecv {
    Tcp(sealrpc_tcp::FrameReader),
    Ws(sealrpc_ws::WsReader),
    Zmq(sealrpc_zmq::ZmqReader),
}

/// The sending half of a connection on any transport.
pub enum AnySend {
    Tcp(sealrpc_tcp::FrameWriter),
    Ws(sealrpc_ws::WsWriter),
    Zmq(sealrpc_zmq::ZmqWriter),
}

impl FrameRecv for AnyRecv {
    async fn recv(&mut self) -> Result<Option<BytesMut>, TransportError> {
        match self {
            AnyRecv::Tcp(r) => FrameRecv::recv(r).await,
            AnyRecv::Ws(r) => FrameRecv::recv(r).await,
            AnyRecv::Zmq(r) => FrameRecv::recv(r).await,
        }
    }
}

impl FrameSend for AnySend {
    async fn send_batch(&mut self, batch: &mut BytesMut) -> Result<(), TransportError> {
        match self {
            AnySend::Tcp(w) => w.send_batch(batch).await,
            AnySend::Ws(w) => w.send_batch(batch).await,
            AnySend::Zmq(w) => w.send_batch(batch).await,
        }
    }

    async fn close(self) {
        match self {
            AnySend::Tcp(w) => FrameSend::close(w).await,
            AnySend::Ws(w) => FrameSend::close(w).await,
            AnySend::Zmq(w) => FrameSend::close(w).await,
        }
    }
}
