//! The state both halves share: the WebSocket stream, the lock that gives
//! its `Sink` side one user at a time, and whether we have sent a close.
use futures::{task::noop_waker_ref, SinkExt};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub(crate) type Ws = WebSocketStream<Conn>;

pub(crate) struct Shared {
    /// Locked only inside a single `poll`, never across an `.await`.
    ws: Mutex<Ws>,
    /// Held for a whole `Sink` operation (across `.await`s) by the writer;
    /// the reader only ever try-locks it. tokio-tungstenite keeps one waker
    /// for the `Sink` side, so two concurrent users could lose a wake-up.
    pub(crate) sink: tokio::sync::Mutex<()>,
    /// Our writer has sent a close frame.
    closed_by_us: AtomicBool,
}

impl Shared {
    pub(crate) fn new(ws: Ws) -> Shared {
        Shared {
            ws: Mutex::new(ws),
            sink: tokio::sync::Mutex::new(()),
            closed_by_us: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the stream. `f` must not block or await.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Ws) -> R) -> R {
        // A panic inside tungstenite has already reached its own caller;
        // the other half carries on with whatever state is left.
        let mut ws = self.ws.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut ws)
    }

    /// Bytes read from the socket so far, whole messages or not.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.with(|ws| ws.get_ref().read)
    }

    pub(crate) fn set_closed_by_us(&self) {
        self.closed_by_us.store(true, Ordering::Release);
    }

    pub(crate) fn closed_by_us(&self) -> bool {
        self.closed_by_us.load(Ordering::Acquire)
    }

    /// Queues a control message (a Ping, or our close after a refusal) and
    /// tries once to flush it, without waiting for anything. Skipped if the
    /// writer is mid-operation. Best effort: an error here surfaces on the
    /// reader or the writer anyway, and the keepalive judges by what arrives.
    pub(crate) fn try_send_control(&self, msg: Message) {
        let Ok(_sink) = self.sink.try_lock() else {
            return;
        };
        // Nobody else is on the Sink side, so a no-op waker loses nothing;
        // a message left unflushed goes out with the next flush.
        let mut cx = Context::from_waker(noop_waker_ref());
        self.with(|ws| {
            if let Poll::Ready(Ok(())) = ws.poll_ready_unpin(&mut cx) {
                if ws.start_send_unpin(msg).is_ok() {
                    let _ = ws.poll_flush_unpin(&mut cx);
                }
            }
        });
    }
}

/// The stream under tungstenite, counting the bytes read so the
/// keepalive sees a large message still arriving as a live peer. A TCP
/// stream for [`crate::connect`] and [`crate::WsListener`]; any other
/// byte stream for [`crate::accept_stream`] and [`crate::connect_stream`].
pub(crate) struct Conn {
    io: Io,
    read: u64,
}

/// What a [`Conn`] reads and writes: TCP without indirection, or a boxed
/// stream of the caller's.
enum Io {
    Tcp(TcpStream),
    Other(Box<dyn Stream>),
}

/// A byte stream tungstenite can run on, shared between the two halves.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

impl Conn {
    pub(crate) fn new(tcp: TcpStream) -> Conn {
        Conn {
            io: Io::Tcp(tcp),
            read: 0,
        }
    }

    pub(crate) fn other(stream: impl Stream + 'static) -> Conn {
        Conn {
            io: Io::Other(Box::new(stream)),
            read: 0,
        }
    }

    fn io(&mut self) -> Pin<&mut dyn Stream> {
        match &mut self.io {
            Io::Tcp(tcp) => Pin::new(tcp),
            Io::Other(other) => Pin::new(&mut **other),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(self.io().poll_read(cx, buf))?;
        self.read += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}
