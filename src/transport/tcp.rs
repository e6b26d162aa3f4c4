//! TCP behind the frame-transport interface (the `sealrpc-tcp` package).
use super::{FrameRecv, FrameSend, TransportError};
use bytes::BytesMut;
use sealrpc_tcp::{FrameError, FrameReader, FrameWriter, TcpConfig};
use std::net::SocketAddr;

impl From<FrameError> for TransportError {
    fn from(e: FrameError) -> TransportError {
        match e {
            FrameError::TooLarge { len, max } => TransportError::TooLarge { len, max },
            FrameError::UnexpectedEof => TransportError::UnexpectedEof,
            FrameError::Io(e) => TransportError::Io(e),
            other => TransportError::Io(std::io::Error::other(other.to_string())),
        }
    }
}

impl From<FrameError> for crate::Error {
    fn from(e: FrameError) -> crate::Error {
        crate::Error::Transport(e.into())
    }
}

impl FrameRecv for FrameReader {
    async fn recv(&mut self) -> Result<Option<BytesMut>, TransportError> {
        Ok(FrameReader::recv(self).await?)
    }
}

impl FrameSend for FrameWriter {
    async fn send_batch(&mut self, batch: &mut BytesMut) -> Result<(), TransportError> {
        Ok(self.write_frames(batch).await?)
    }

    async fn close(self) {
        let _ = self.shutdown().await;
    }
}

/// Constructors for the TCP transport.
pub struct TcpTransport;

impl TcpTransport {
    fn config(max_frame: usize) -> TcpConfig {
        TcpConfig {
            max_frame,
            ..Default::default()
        }
    }

    pub(crate) async fn connect(
        addr: &str,
        max_frame: usize,
    ) -> Result<(FrameReader, FrameWriter, SocketAddr), TransportError> {
        let (reader, writer) = sealrpc_tcp::connect(addr, Self::config(max_frame)).await?;
        let peer = reader.peer_addr()?;
        Ok((reader, writer, peer))
    }

    pub(crate) async fn bind(
        addr: &str,
        max_frame: usize,
    ) -> Result<sealrpc_tcp::Listener, TransportError> {
        Ok(sealrpc_tcp::Listener::bind(addr, Self::config(max_frame)).await?)
    }
}
