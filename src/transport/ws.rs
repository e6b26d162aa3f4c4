//! WebSocket behind the frame-transport interface (the `sealrpc-ws`
//! package): each frame is one binary message.
use super::{FrameRecv, FrameSend, TransportError};
use bytes::BytesMut;
use sealrpc_ws::{WsConfig, WsError, WsReader, WsWriter};
use std::net::SocketAddr;

impl From<WsError> for TransportError {
    fn from(e: WsError) -> TransportError {
        match e {
            WsError::TooLarge { len, max } => TransportError::TooLarge { len, max },
            WsError::Handshake(m) => TransportError::Handshake(m),
            WsError::Protocol(m) => TransportError::Protocol(m),
            WsError::Io(e) => TransportError::Io(e),
            other => TransportError::Protocol(other.to_string()),
        }
    }
}

impl FrameRecv for WsReader {
    async fn recv(&mut self) -> Result<Option<BytesMut>, TransportError> {
        Ok(WsReader::recv(self).await?)
    }
}

impl FrameSend for WsWriter {
    /// Splits the length-prefixed batch into frames without copying and
    /// sends each as one binary message, flushing once.
    async fn send_batch(&mut self, batch: &mut BytesMut) -> Result<(), TransportError> {
        for frame in super::split_batch(batch)? {
            self.feed(frame).await?;
        }
        Ok(self.flush().await?)
    }

    async fn close(self) {
        let _ = WsWriter::close(self).await;
    }
}

fn config(max_frame: usize, path: &str) -> WsConfig {
    WsConfig {
        max_frame,
        path: path.to_owned(),
        ..Default::default()
    }
}

pub(crate) async fn connect(
    url: &str,
    path: &str,
    max_frame: usize,
) -> Result<(WsReader, WsWriter, SocketAddr), TransportError> {
    Ok(sealrpc_ws::connect(url, config(max_frame, path)).await?)
}

pub(crate) async fn bind(
    addr: &str,
    path: &str,
    max_frame: usize,
    handshake_timeout: std::time::Duration,
) -> Result<sealrpc_ws::WsListener, TransportError> {
    let cfg = WsConfig {
        handshake_timeout,
        ..config(max_frame, path)
    };
    Ok(sealrpc_ws::WsListener::bind(addr, cfg).await?)
}
