//! The write half: frames go through a bounded channel to the socket task.
use crate::shared::{Cmd, ConnKey, Guard, Op, State};
use crate::ZmqError;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Writes frames of one (virtual) connection.
pub struct ZmqWriter {
    key: ConnKey,
    cmds: mpsc::Sender<Cmd>,
    state: Arc<State>,
    _guard: Arc<Guard>,
    max_frame: usize,
}

impl std::fmt::Debug for ZmqWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqWriter")
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl ZmqWriter {
    pub(crate) fn new(
        key: ConnKey,
        cmds: mpsc::Sender<Cmd>,
        state: Arc<State>,
        guard: Arc<Guard>,
        max_frame: usize,
    ) -> ZmqWriter {
        ZmqWriter {
            key,
            cmds,
            state,
            _guard: guard,
            max_frame,
        }
    }

    /// The largest payload this writer sends.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Queues one frame for the socket task, waiting while the queue is
    /// full. A frame over the limit is refused with [`ZmqError::TooLarge`]
    /// before anything is queued, and the writer stays usable. On an ended
    /// connection: the error that ended it, or [`ZmqError::Closed`].
    pub async fn feed(&mut self, frame: Bytes) -> Result<(), ZmqError> {
        if frame.len() > self.max_frame {
            return Err(ZmqError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        self.state.check_open()?;
        self.command(Op::Frame(frame)).await
    }

    /// Returns once every frame fed so far was handed to zeromq (which
    /// writes it to the socket from its own task), or with the error that
    /// ended the connection.
    pub async fn flush(&mut self) -> Result<(), ZmqError> {
        self.state.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.command(Op::Flush(tx)).await?;
        self.answer(rx).await
    }

    /// Feeds and flushes one frame.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), ZmqError> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Hands every frame fed so far to zeromq, then disconnects: the peer's
    /// reader sees `Ok(None)`, and so does ours. ZeroMQ has no half-close.
    pub async fn close(self) -> Result<(), ZmqError> {
        self.state.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.command(Op::Close(tx)).await?;
        self.answer(rx).await
    }

    async fn command(&self, op: Op) -> Result<(), ZmqError> {
        let cmd = Cmd {
            key: self.key.clone(),
            op,
        };
        if self.cmds.send(cmd).await.is_err() {
            // The task is gone; it recorded why, or nothing (Closed).
            self.state.check_open()?;
            return Err(ZmqError::Closed);
        }
        Ok(())
    }

    async fn answer(&self, rx: oneshot::Receiver<Result<(), ZmqError>>) -> Result<(), ZmqError> {
        match rx.await {
            Ok(Ok(())) => Ok(()),
            // Prefer the recorded reason (TooLarge, QueueFull...) to Closed.
            Ok(Err(_)) | Err(_) => {
                self.state.check_open()?;
                Err(ZmqError::Closed)
            }
        }
    }
}
