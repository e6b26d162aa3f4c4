//! The write half: one binary message per frame.
use crate::shared::Shared;
use crate::{connection_error, WsError};
use bytes::Bytes;
use futures::{future::poll_fn, SinkExt};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::Message;

/// Writes binary messages.
pub struct WsWriter {
    shared: Arc<Shared>,
    max_frame: usize,
}

impl std::fmt::Debug for WsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsWriter")
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl WsWriter {
    pub(crate) fn new(shared: Arc<Shared>, max_frame: usize) -> WsWriter {
        WsWriter { shared, max_frame }
    }

    /// The largest payload this writer sends.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Queues one binary message without flushing (tungstenite writes to
    /// the socket once `write_buffer` bytes are queued). A frame over the
    /// limit is refused with [`WsError::TooLarge`] before anything is
    /// queued, and the writer stays usable.
    pub async fn feed(&mut self, frame: Bytes) -> Result<(), WsError> {
        if frame.len() > self.max_frame {
            return Err(WsError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        let shared = &*self.shared;
        let _sink = shared.sink.lock().await;
        poll_fn(|cx| shared.with(|ws| ws.poll_ready_unpin(cx)))
            .await
            .map_err(connection_error)?;
        shared
            .with(|ws| ws.start_send_unpin(Message::Binary(frame)))
            .map_err(connection_error)
    }

    /// Writes everything queued so far.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        let shared = &*self.shared;
        let _sink = shared.sink.lock().await;
        poll_fn(|cx| shared.with(|ws| ws.poll_flush_unpin(cx)))
            .await
            .map_err(connection_error)
    }

    /// Queues and flushes one binary message.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), WsError> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Graceful close: flushes what is queued, sends a close frame (code
    /// none), then shuts the TCP write side down (FIN). The peer's reader
    /// sees `Ok(None)`. Keep our reader running to see the peer's echo.
    pub async fn close(self) -> Result<(), WsError> {
        let shared = &*self.shared;
        let _sink = shared.sink.lock().await;
        shared.set_closed_by_us();
        let closed = poll_fn(|cx| shared.with(|ws| ws.poll_close_unpin(cx)))
            .await
            .map_err(connection_error);
        // FIN even if the close frame could not be written.
        let fin = poll_fn(|cx| shared.with(|ws| Pin::new(ws.get_mut()).poll_shutdown(cx))).await;
        closed?;
        match fin {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(WsError::Io(e)),
            _ => Ok(()),
        }
    }
}
