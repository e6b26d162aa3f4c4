//! What a connection's two halves share with the socket task: the end
//! state, the key naming the connection, and the commands writers send.
use crate::ZmqError;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// Names one (virtual) connection: the peer's routing identity (empty on
/// the client) and a number unique within its socket, so that a stale half
/// never reaches a later connection that reuses the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnKey {
    pub(crate) identity: Bytes,
    pub(crate) id: u64,
}

/// How a connection ended; the first end recorded wins.
#[derive(Debug)]
pub(crate) enum End {
    /// The peer disconnected, or we closed: `Ok(None)` / `Closed`.
    Disconnected,
    /// The socket task stopped (listener dropped, socket failed).
    Shutdown,
    /// A failure of this connection only.
    Failed(ZmqError),
}

/// The end state, shared by the reader, the writer and the socket task.
#[derive(Debug, Default)]
pub(crate) struct State {
    end: Mutex<Option<End>>,
    /// Bytes of the frames queued for the reader (server peers).
    queued: AtomicUsize,
}

impl State {
    /// Records `end` unless an end is already recorded.
    pub(crate) fn end(&self, end: End) {
        let mut slot = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(end);
        }
    }

    /// Counts `len` more bytes queued; returns the new total.
    pub(crate) fn queue_bytes(&self, len: usize) -> usize {
        self.queued.fetch_add(len, Ordering::Relaxed) + len
    }

    /// `len` bytes left the queue (read, or never queued after all).
    pub(crate) fn unqueue_bytes(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
    }

    /// What the reader returns once its queue is empty and closed.
    pub(crate) fn read_end(&self) -> Result<Option<bytes::BytesMut>, ZmqError> {
        match &*self.end.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(End::Disconnected) => Ok(None),
            Some(End::Failed(e)) => Err(e.again()),
            Some(End::Shutdown) | None => Err(ZmqError::Closed),
        }
    }

    /// `Ok` while the connection is open, else what a writer returns.
    pub(crate) fn check_open(&self) -> Result<(), ZmqError> {
        match &*self.end.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Ok(()),
            Some(End::Failed(e)) => Err(e.again()),
            Some(End::Disconnected | End::Shutdown) => Err(ZmqError::Closed),
        }
    }
}

/// Held by both halves of a connection; when both are dropped, it tells
/// the socket task, which then disconnects the peer.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) key: ConnKey,
    pub(crate) gone: mpsc::UnboundedSender<ConnKey>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The task may be gone already; then there is nothing to tell.
        let _ = self.gone.send(self.key.clone());
    }
}

/// A writer's request to the socket task.
#[derive(Debug)]
pub(crate) enum Op {
    Frame(Bytes),
    /// Answered once every earlier frame was handed to zeromq.
    Flush(oneshot::Sender<Result<(), ZmqError>>),
    /// Hand earlier frames to zeromq, then disconnect.
    Close(oneshot::Sender<Result<(), ZmqError>>),
}

/// One command: which connection, and what to do.
#[derive(Debug)]
pub(crate) struct Cmd {
    pub(crate) key: ConnKey,
    pub(crate) op: Op,
}

/// Everything one new connection is made of, for the socket task.
pub(crate) struct Parts {
    pub(crate) state: Arc<State>,
    pub(crate) frames: mpsc::Sender<bytes::BytesMut>,
}

/// Makes both halves of a connection and what the task keeps of it.
pub(crate) fn connection(
    key: ConnKey,
    queue: usize,
    max_frame: usize,
    cmds: mpsc::Sender<Cmd>,
    gone: mpsc::UnboundedSender<ConnKey>,
) -> (crate::ZmqReader, crate::ZmqWriter, Parts) {
    let state = Arc::new(State::default());
    let (tx, rx) = mpsc::channel(queue);
    let guard = Arc::new(Guard {
        key: key.clone(),
        gone,
    });
    let reader = crate::ZmqReader::new(rx, state.clone(), guard.clone());
    let writer = crate::ZmqWriter::new(key, cmds, state.clone(), guard, max_frame);
    (reader, writer, Parts { state, frames: tx })
}
