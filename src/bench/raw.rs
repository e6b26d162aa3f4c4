//! Raw mode: the transport with no envelope; and the loop mode, the same
//! code with a [`Codec`] that seals and opens each frame (see `sealed_loop`).
//! Frames are batched as the channel's outbox batches them: appended with
//! `push_frame` to one shared buffer, written by one writer task with
//! `send_batch`; each side reads in its own task. A connection is FIFO, so
//! replies match requests in order.
use super::run::Measured;
use super::{BenchConfig, BenchError, Mode, Transport};
use crate::transport::{
    connect, push_frame, Endpoint, FrameRecv, FrameSend, Listener, TransportError,
    DEFAULT_MAX_FRAME,
};
use bytes::BytesMut;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

/// What a frame carries: the payload as is (raw), or an envelope.
pub(crate) trait Codec: Send + 'static {
    /// Appends a request carrying `payload` to `out`.
    fn request(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), crate::Error>;
    /// Checks one reply frame; returns the length of the body it carries.
    fn reply(&mut self, frame: &mut BytesMut) -> Result<usize, crate::Error>;
    /// Server side: appends the answer to request `frame` to `out`.
    fn echo(&mut self, frame: &mut BytesMut, out: &mut BytesMut) -> Result<(), crate::Error>;
}

/// No envelope: the payload is the frame.
pub(crate) struct Plain;

impl Codec for Plain {
    fn request(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), crate::Error> {
        out.extend_from_slice(payload);
        Ok(())
    }
    fn reply(&mut self, frame: &mut BytesMut) -> Result<usize, crate::Error> {
        Ok(frame.len())
    }
    fn echo(&mut self, frame: &mut BytesMut, out: &mut BytesMut) -> Result<(), crate::Error> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// Runs both measurements for one transport and size, with `client` and
/// `server` codecs (`Plain` for raw mode).
pub(crate) async fn measure<C: Codec, S: Codec>(
    transport: Transport,
    size: usize,
    bench: &BenchConfig,
    mode: Mode,
    (mut client_codec, server_codec): (C, S),
) -> Result<Measured, BenchError> {
    let err = |source| BenchError::Run {
        transport: transport.name(),
        mode: mode.name(),
        source,
    };
    let endpoint = Endpoint::parse(transport.url())
        .ok_or_else(|| err(crate::Error::BadAddress(transport.url().into())))?;
    let listener = Listener::bind(&endpoint, DEFAULT_MAX_FRAME)
        .await
        .map_err(|e| err(e.into()))?;
    let url = listener.local_url().map_err(|e| err(e.into()))?;
    let server = tokio::spawn(serve(listener, server_codec));
    let result = async {
        let endpoint =
            Endpoint::parse(&url).ok_or_else(|| err(crate::Error::BadAddress(url.clone())))?;
        let (r, w, _) = connect(&endpoint, DEFAULT_MAX_FRAME)
            .await
            .map_err(|e| err(e.into()))?;
        let mut client = Conn::start(r, w);
        let c = &mut client_codec;
        let payload = vec![0xa5u8; size];
        for _ in 0..bench.requests.min(super::WARMUP_ROUND_TRIPS) {
            client
                .outbox
                .push(|b| c.request(&payload, b))
                .map_err(err)?;
            client.reply(c, transport, mode, size).await?;
        }
        let mut latencies = Vec::new();
        for _ in 0..bench.requests.min(super::LATENCY_ROUND_TRIPS) {
            let start = Instant::now();
            client
                .outbox
                .push(|b| c.request(&payload, b))
                .map_err(err)?;
            client.reply(c, transport, mode, size).await?;
            latencies.push(start.elapsed());
        }
        let start = Instant::now();
        let mut sent = 0;
        while sent < bench.inflight.min(bench.requests) {
            client
                .outbox
                .push(|b| c.request(&payload, b))
                .map_err(err)?;
            sent += 1;
        }
        for _ in 0..bench.requests {
            client.reply(c, transport, mode, size).await?;
            if sent < bench.requests {
                client
                    .outbox
                    .push(|b| c.request(&payload, b))
                    .map_err(err)?;
                sent += 1;
            }
        }
        let elapsed = start.elapsed();
        client.outbox.close();
        Ok(Measured {
            latencies,
            elapsed,
            spans_exported: None,
        })
    }
    .await;
    server.abort();
    result
}

/// Answers every frame on the first connection until aborted (the bench
/// makes one; the codec holds that connection's session).
async fn serve(listener: Listener, codec: impl Codec) {
    let mut conns = JoinSet::new();
    let mut codec = Some(codec);
    loop {
        match listener.accept().await {
            Ok((mut r, w, _)) => {
                let Some(mut codec) = codec.take() else {
                    continue;
                };
                conns.spawn(async move {
                    let (conn, _writer) = Conn::writer_only(w);
                    while let Ok(Some(mut frame)) = r.recv().await {
                        if conn.push(|b| codec.echo(&mut frame, b)).is_err() {
                            break;
                        }
                    }
                    conn.close();
                });
            }
            Err(e) if e.concerns_one_connection() => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The send side: frames appended to a shared batch, one writer task.
struct Outbox {
    state: Mutex<(BytesMut, bool)>,
    ready: Notify,
}

impl Outbox {
    fn push(
        &self,
        fill: impl FnOnce(&mut BytesMut) -> Result<(), crate::Error>,
    ) -> Result<(), crate::Error> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.1 {
            return Err(crate::Error::ConnectionClosed);
        }
        push_frame(&mut st.0, DEFAULT_MAX_FRAME, fill)?;
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.ready.notify_one();
    }

    async fn run_writer(self: Arc<Self>, mut writer: impl FrameSend) {
        let mut spare = BytesMut::with_capacity(16 * 1024);
        loop {
            let closed = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut st.0, &mut spare);
                st.1
            };
            if !spare.is_empty() && writer.send_batch(&mut spare).await.is_err() {
                self.close();
                return;
            }
            if closed {
                writer.close().await;
                return;
            }
            let empty = self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .is_empty();
            if empty {
                self.ready.notified().await;
            }
        }
    }
}

/// A client connection: the outbox, and replies from a reader task.
struct Conn {
    outbox: Arc<Outbox>,
    replies: mpsc::Receiver<Result<BytesMut, TransportError>>,
    _tasks: [AbortOnDrop; 2],
}

/// Aborts the task when dropped (nothing outlives its measurement).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Conn {
    fn writer_only(w: impl FrameSend) -> (Arc<Outbox>, AbortOnDrop) {
        let outbox = Arc::new(Outbox {
            state: Mutex::new((BytesMut::with_capacity(16 * 1024), false)),
            ready: Notify::new(),
        });
        let task = tokio::spawn(outbox.clone().run_writer(w));
        (outbox, AbortOnDrop(task))
    }

    fn start(mut r: impl FrameRecv, w: impl FrameSend) -> Conn {
        let (outbox, writer) = Conn::writer_only(w);
        let (tx, replies) = mpsc::channel(1024);
        let reader = tokio::spawn(async move {
            loop {
                let frame = r.recv().await;
                let end = !matches!(frame, Ok(Some(_)));
                let sent = match frame {
                    Ok(Some(f)) => tx.send(Ok(f)).await,
                    Ok(None) => tx.send(Err(TransportError::UnexpectedEof)).await,
                    Err(e) => tx.send(Err(e)).await,
                };
                if end || sent.is_err() {
                    return;
                }
            }
        });
        Conn {
            outbox,
            replies,
            _tasks: [writer, AbortOnDrop(reader)],
        }
    }

    /// The next reply, checked to carry `size` bytes.
    async fn reply(
        &mut self,
        codec: &mut impl Codec,
        transport: Transport,
        mode: Mode,
        size: usize,
    ) -> Result<(), BenchError> {
        let err = |source| BenchError::Run {
            transport: transport.name(),
            mode: mode.name(),
            source,
        };
        let mut frame = match self.replies.recv().await {
            Some(f) => f.map_err(|e| err(e.into()))?,
            None => return Err(err(crate::Error::ConnectionClosed)),
        };
        let got = codec.reply(&mut frame).map_err(err)?;
        if got != size {
            return Err(BenchError::Mismatch {
                transport: transport.name(),
                mode: mode.name(),
                sent: size,
                got,
            });
        }
        Ok(())
    }
}
