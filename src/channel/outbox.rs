//! Outbox: the send side of one connection. Callers seal straight into a
//! shared frame buffer under a short lock (seal in place, no per-request
//! channel hop); one writer task swaps the buffer out and writes the whole
//! batch with one syscall.
use crate::error::{Error, WireError};
use crate::wire::{Kind, Sealer};
use bytes::BytesMut;
use sealrpc_tcp::{push_frame_with, FrameWriter};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

struct State {
    sealer: Sealer,
    buf: BytesMut,
    closed: bool,
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    max_frame: usize,
}

impl Outbox {
    pub(crate) fn new(sealer: Sealer, max_frame: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State {
                sealer,
                buf: BytesMut::with_capacity(16 * 1024),
                closed: false,
            }),
            ready: Notify::new(),
            max_frame,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals one envelope of `kind` whose load `write_load` encodes.
    pub(crate) fn seal(
        &self,
        kind: Kind,
        now_ms: u64,
        write_load: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
    ) -> Result<(), Error> {
        let mut st = self.lock();
        if st.closed {
            return Err(Error::ConnectionClosed);
        }
        if st.sealer.needs_rekey() {
            st.sealer.rekey(super::config::random_salt());
        }
        let State { sealer, buf, .. } = &mut *st;
        push_frame_with(buf, self.max_frame, |b| {
            sealer
                .seal(kind, now_ms, self.max_frame, b, write_load)
                .map_err(Error::from)
        })?;
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues an unauthenticated alert frame and closes the outbox.
    pub(crate) fn alert_and_close(&self, frame: &[u8]) {
        let mut st = self.lock();
        let _ = push_frame_with(&mut st.buf, self.max_frame, |b| {
            b.extend_from_slice(frame);
            Ok::<(), Error>(())
        });
        st.closed = true;
        drop(st);
        self.ready.notify_one();
    }

    /// Stops accepting envelopes; the writer flushes what is queued and ends.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Writes batches until closed (then flushes and shuts the socket's
    /// write side) or until the socket fails.
    pub(crate) async fn run_writer(self: Arc<Self>, mut writer: FrameWriter) {
        let mut spare = BytesMut::with_capacity(16 * 1024);
        loop {
            let closed = {
                let mut st = self.lock();
                std::mem::swap(&mut st.buf, &mut spare);
                st.closed
            };
            if !spare.is_empty() {
                if let Err(e) = writer.write_frames(&mut spare).await {
                    tracing::debug!("write failed: {e}");
                    self.close();
                    return;
                }
            }
            if closed {
                let _ = writer.shutdown().await;
                return;
            }
            let empty = self.lock().buf.is_empty();
            if empty {
                self.ready.notified().await;
            }
        }
    }
}
