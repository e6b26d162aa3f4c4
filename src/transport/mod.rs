//! The frame-transport interface the channel drives, and the transports
//! behind it. A transport moves opaque frames (each one sealed envelope);
//! it knows nothing of keys, loads or traces, and the channel knows nothing
//! of sockets: it sees only [`FrameRecv`] and [`FrameSend`].
//!
//! Outgoing frames are batched by the channel in one buffer, each frame as
//! `u32 big-endian length ‖ payload` (built with [`push_frame`]). For TCP
//! that is already the wire format, so a batch is written as is.
mod tcp;

use bytes::BytesMut;
use std::future::Future;
use std::net::SocketAddr;

pub use tcp::TcpTransport;

/// Default maximum frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = sealrpc_tcp::DEFAULT_MAX_FRAME;

/// Transport failures, whatever the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    UnexpectedEof,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
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

/// A parsed endpoint URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://HOST:PORT`
    Tcp(String),
}

impl Endpoint {
    /// Parses `tcp://HOST:PORT`. (ZeroMQ and WebSocket come with issue #3.)
    pub fn parse(url: &str) -> Option<Endpoint> {
        let rest = url.strip_prefix("tcp://")?;
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Some(Endpoint::Tcp(rest.to_owned()))
            }
            _ => None,
        }
    }
}

/// A bound listener on some transport.
pub enum Listener {
    Tcp(sealrpc_tcp::Listener),
}

impl Listener {
    /// Binds `endpoint`.
    pub async fn bind(endpoint: &Endpoint, max_frame: usize) -> Result<Listener, TransportError> {
        match endpoint {
            Endpoint::Tcp(addr) => Ok(Listener::Tcp(TcpTransport::bind(addr, max_frame).await?)),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        match self {
            Listener::Tcp(l) => Ok(l.local_addr()?),
        }
    }

    /// The URL a client connects to (the bound address with the scheme).
    pub fn local_url(&self) -> Result<String, TransportError> {
        let addr = self.local_addr()?;
        match self {
            Listener::Tcp(_) => Ok(format!("tcp://{addr}")),
        }
    }

    /// Accepts one connection.
    pub async fn accept(
        &self,
    ) -> Result<(impl FrameRecv, impl FrameSend, SocketAddr), TransportError> {
        match self {
            Listener::Tcp(l) => Ok(l.accept().await?),
        }
    }
}

/// Connects to `endpoint`; also returns the peer's address.
pub async fn connect(
    endpoint: &Endpoint,
    max_frame: usize,
) -> Result<(impl FrameRecv, impl FrameSend, SocketAddr), TransportError> {
    match endpoint {
        Endpoint::Tcp(addr) => TcpTransport::connect(addr, max_frame).await,
    }
}
