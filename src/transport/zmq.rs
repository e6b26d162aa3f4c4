//! ZeroMQ behind the frame-transport interface (the `sealrpc-zmq`
//! package): a DEALER per client, one ROUTER per server demultiplexed into
//! per-peer virtual connections; each frame is one single-part message.
use super::{FrameRecv, FrameSend, TransportError};
use bytes::BytesMut;
use sealrpc_zmq::{ZmqConfig, ZmqError, ZmqReader, ZmqWriter};

impl From<ZmqError> for TransportError {
    fn from(e: ZmqError) -> TransportError {
        match e {
            ZmqError::TooLarge { len, max } => TransportError::TooLarge { len, max },
            ZmqError::Io(e) => TransportError::Io(e),
            ZmqError::Closed => TransportError::Io(std::io::ErrorKind::ConnectionReset.into()),
            other => TransportError::Protocol(other.to_string()),
        }
    }
}

impl FrameRecv for ZmqReader {
    async fn recv(&mut self) -> Result<Option<BytesMut>, TransportError> {
        Ok(ZmqReader::recv(self).await?)
    }
}

impl FrameSend for ZmqWriter {
    async fn send_batch(&mut self, batch: &mut BytesMut) -> Result<(), TransportError> {
        for frame in super::split_batch(batch)? {
            self.feed(frame).await?;
        }
        Ok(self.flush().await?)
    }

    async fn close(self) {
        let _ = ZmqWriter::close(self).await;
    }
}

/// Per-peer queue: above the channel's in-flight cap, so a busy but
/// healthy peer is never dropped for filling it.
pub(crate) fn config(max_frame: usize) -> ZmqConfig {
    ZmqConfig {
        max_frame,
        queue: 8192,
        ..ZmqConfig::default()
    }
}

/// As [`config`], for a bound socket (ROUTER, PUB) whose accepted peers'
/// ZMTP handshakes may take `handshake_timeout`, and which may stop
/// reading for as long before the ZMTP gate cuts them: the channel's one
/// bound on a peer that holds the server without making progress.
pub(crate) fn server_config(max_frame: usize, handshake_timeout: std::time::Duration) -> ZmqConfig {
    ZmqConfig {
        handshake_timeout,
        stall_timeout: handshake_timeout,
        ..config(max_frame)
    }
}
