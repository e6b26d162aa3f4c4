//! sealrpc's TCP transport: length-delimited opaque frames over tokio TCP.
//!
//! Frame = 4-byte big-endian length N, then N bytes. It knows nothing of
//! keys, loads or traces: it moves frames and enforces one size limit.
//!
//! Size limit: an inbound frame whose announced length exceeds the maximum
//! is refused *before any allocation* with [`FrameError::TooLarge`], and the
//! connection is closed (the stream cannot be resynchronised without reading
//! the oversize body). An outbound frame over the limit is refused with the
//! same error before anything is written; the connection survives.
//!
//! Sockets get TCP_NODELAY. [`FrameWriter::shutdown`] closes gracefully
//! (flush, then FIN); a clean EOF between frames reads as `Ok(None)`, an EOF
//! inside a frame as [`FrameError::UnexpectedEof`].
//!
//! [`FrameReader`] reads from a TCP stream's read half by default, and from
//! any [`tokio::io::AsyncRead`] through [`FrameReader::new`]: the same code,
//! which the property tests and the `tcp_frames` fuzz target drive with
//! in-memory streams.
mod reader;
mod writer;

pub use reader::FrameReader;
pub use writer::{push_frame_with, FrameWriter};

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;
/// Default maximum frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Transport failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    UnexpectedEof,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Transport settings.
#[derive(Clone, Copy, Debug)]
pub struct TcpConfig {
    /// Largest frame payload accepted or sent.
    pub max_frame: usize,
    /// Initial read buffer per connection (grows as frames need).
    pub read_buffer: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_frame: DEFAULT_MAX_FRAME,
            read_buffer: 8 * 1024,
        }
    }
}

/// Connects and returns the two halves of a framed connection.
pub async fn connect(
    addr: impl ToSocketAddrs,
    cfg: TcpConfig,
) -> Result<(FrameReader, FrameWriter), FrameError> {
    let stream = TcpStream::connect(addr).await?;
    Ok(split(stream, cfg)?)
}

/// Wraps an accepted or connected stream: sets TCP_NODELAY and splits it.
pub fn split(stream: TcpStream, cfg: TcpConfig) -> std::io::Result<(FrameReader, FrameWriter)> {
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    Ok((FrameReader::new(r, cfg), FrameWriter::new(w, cfg)))
}

/// A bound listener yielding framed connections.
pub struct Listener {
    inner: TcpListener,
    cfg: TcpConfig,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: impl ToSocketAddrs, cfg: TcpConfig) -> Result<Listener, FrameError> {
        Ok(Listener {
            inner: TcpListener::bind(addr).await?,
            cfg,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> Result<(FrameReader, FrameWriter, SocketAddr), FrameError> {
        let (stream, peer) = self.inner.accept().await?;
        let (r, w) = split(stream, self.cfg)?;
        Ok((r, w, peer))
    }
}
