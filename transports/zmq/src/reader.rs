//! The read half: frames from the connection's bounded queue.
use crate::shared::{Guard, State};
use crate::ZmqError;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Reads frames of one (virtual) connection.
pub struct ZmqReader {
    frames: mpsc::Receiver<BytesMut>,
    state: Arc<State>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for ZmqReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqReader")
            .field("queued", &self.frames.len())
            .finish_non_exhaustive()
    }
}

impl ZmqReader {
    pub(crate) fn new(
        frames: mpsc::Receiver<BytesMut>,
        state: Arc<State>,
        guard: Arc<Guard>,
    ) -> ZmqReader {
        ZmqReader {
            frames,
            state,
            _guard: guard,
        }
    }

    /// The next frame. Frames queued before an end or a failure are
    /// returned first; then `Ok(None)` when the peer disconnected or the
    /// connection was closed, or the error that ended it (sticky).
    /// Cancel-safe: it only waits on a channel.
    pub async fn recv(&mut self) -> Result<Option<BytesMut>, ZmqError> {
        match self.frames.recv().await {
            Some(frame) => {
                self.state.unqueue_bytes(frame.len());
                Ok(Some(frame))
            }
            None => self.state.read_end(),
        }
    }
}
