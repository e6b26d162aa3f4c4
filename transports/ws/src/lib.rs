//! sealrpc's WebSocket transport: opaque binary messages over
//! tokio-tungstenite. One frame = one binary WebSocket message. It knows
//! nothing of keys, loads or traces: it moves frames and enforces one size
//! limit.
//!
//! - **Binary only.** A text message from the peer is a
//!   [`WsError::Protocol`]; the connection is then over (we send a best-effort
//!   close with code 1003).
//! - **Size limit.** tungstenite is configured with `max_frame` as both its
//!   message and its frame limit, so an inbound message over the limit is
//!   refused from its frame header, before its body is read, with
//!   [`WsError::TooLarge`] (and a best-effort close with code 1009). An
//!   outbound frame over the limit is refused before anything is queued; the
//!   writer stays usable. *Unlike the TCP transport*, tungstenite reserves a
//!   frame's announced length (at most `max_frame`) as soon as its header
//!   passes the check, so a peer can make one connection hold up to
//!   `max_frame` bytes by announcing a large frame.
//! - **Handshake.** The listener upgrades only requests for
//!   [`WsConfig::path`] (any other path gets HTTP 404, and the client sees
//!   [`WsError::Handshake`]). Handshakes run in their own tasks with a
//!   timeout ([`WsConfig::handshake_timeout`], default
//!   [`HANDSHAKE_TIMEOUT`]), so a slow or silent client never holds up
//!   [`WsListener::accept`], which stays cancel-safe; at most 1,024 run at
//!   once (then TCP accepting pauses). tungstenite caps the upgrade request
//!   at 64 KiB. Sockets get TCP_NODELAY.
//!   [`accept_stream`] and [`connect_stream`] run the same two handshakes on
//!   any byte stream (the `ws_frames` fuzz target uses in-memory ones).
//! - **Close.** [`WsWriter::close`] sends a close frame, flushes, then shuts
//!   the TCP write side down (FIN). The peer's [`WsReader::recv`] returns
//!   `Ok(None)` on a close frame with code 1000/1001 or none; another code is
//!   a [`WsError::Protocol`]. A connection that ends without a close frame is
//!   `WsError::Io(UnexpectedEof)`. Ends and errors are sticky.
//!
//! # Split halves and keepalive
//!
//! The stream is split by hand rather than with `StreamExt::split`: both
//! halves share the `WebSocketStream` behind a mutex that is only ever held
//! inside one `poll` (like `split`'s lock), which also lets the writer reach
//! the TCP socket to send FIN. tokio-tungstenite keeps separate wakers for
//! its `Stream` side (the reader) and its `Sink` side. The `Sink` side must
//! have one user at a time, so it has a second, async lock, held by the
//! writer for each whole operation.
//!
//! The keepalive runs inside [`WsReader::recv`]. After one
//! [`WsConfig::ping_interval`] with nothing received, recv sends a Ping,
//! and another one interval later. If nothing at all (a message, a ping, a
//! pong, a close, or any byte of a message still arriving) comes within two
//! intervals of the first Ping, recv returns `WsError::Io(TimedOut)`. A Ping
//! is sent only if the writer is not in the middle of an operation
//! (try-lock, never waits): it only provokes traffic; the verdict rests on
//! what arrives. Two consequences:
//! - tungstenite answers the peer's Pings only while recv is being polled,
//!   so **keep a recv pending** on every connection whose peer pings: a
//!   side that stops reading looks dead to its peer after three intervals.
//! - Our Ping waits behind what we are sending, so a peer that sends
//!   nothing while it receives one message from us for more than about two
//!   intervals is judged dead. The default 20 s interval allows a 16 MiB
//!   message down to about 300 KB/s.
mod listener;
mod reader;
mod shared;
mod writer;

pub use listener::WsListener;
pub use reader::WsReader;
pub use writer::WsWriter;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as TError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Default maximum frame (message) payload: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// How long a WebSocket handshake may take, on either side, once the TCP
/// connection is up, unless [`WsConfig::handshake_timeout`] says otherwise.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// A message over the size limit, inbound or outbound.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// The WebSocket handshake failed: wrong path, not a WebSocket upgrade,
    /// refused by the server, a bad URL, timed out or cut off.
    #[error("websocket handshake failed: {0}")]
    Handshake(String),
    /// The peer broke the protocol: a text message, a close with an error
    /// code, an invalid frame.
    #[error("websocket protocol error: {0}")]
    Protocol(String),
    /// I/O, including `TimedOut` for a peer the keepalive found dead and
    /// `UnexpectedEof` for a connection that ended without a close frame.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl WsError {
    /// The same error again, for sticky failures (`io::Error` is not `Clone`).
    pub(crate) fn again(&self) -> WsError {
        match self {
            WsError::TooLarge { len, max } => WsError::TooLarge {
                len: *len,
                max: *max,
            },
            WsError::Handshake(s) => WsError::Handshake(s.clone()),
            WsError::Protocol(s) => WsError::Protocol(s.clone()),
            WsError::Io(e) => WsError::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Transport settings.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message payload accepted or sent.
    pub max_frame: usize,
    /// The path the listener upgrades (others get 404). `connect` takes its
    /// path from the URL instead.
    pub path: String,
    /// Keepalive period; `Duration::ZERO` disables the keepalive. Values
    /// above ten years are treated as ten years.
    pub ping_interval: Duration,
    /// tungstenite's read buffer per connection, allocated up front; also
    /// the most read from the socket in one call.
    pub read_buffer: usize,
    /// Bytes tungstenite queues before writing to the socket without a
    /// flush.
    pub write_buffer: usize,
    /// How long a WebSocket handshake (the HTTP upgrade) may take once the
    /// TCP connection is up, on either side; default
    /// [`HANDSHAKE_TIMEOUT`]. A listener drops a client that has not sent
    /// a complete upgrade request by then (a silent or slowloris client).
    pub handshake_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_frame: DEFAULT_MAX_FRAME,
            path: "/sealrpc".to_owned(),
            ping_interval: Duration::from_secs(20),
            read_buffer: 8 * 1024,
            write_buffer: 8 * 1024,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

impl WsConfig {
    fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer)
            // tungstenite panics unless max_write_buffer_size > write_buffer_size.
            .write_buffer_size(self.write_buffer.min(usize::MAX - 1))
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(self.max_frame))
            .max_frame_size(Some(self.max_frame))
    }
}

/// Connects to `url` (`ws://HOST:PORT/PATH`) and returns the two halves and
/// the peer's address. Failing to reach the host is `WsError::Io`; anything
/// that goes wrong after that, in the WebSocket handshake, is
/// `WsError::Handshake`.
pub async fn connect(
    url: &str,
    cfg: WsConfig,
) -> Result<(WsReader, WsWriter, SocketAddr), WsError> {
    let request = client_request(url)?;
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| WsError::Handshake("the URL has no host".into()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let (r, w) = client_handshake(request, shared::Conn::new(stream), &cfg).await?;
    Ok((r, w, peer))
}

/// The client side over a byte stream already connected to the server
/// (`url` gives the path and the `Host` header): what [`connect`] does
/// after its TCP connect, for other streams (the `ws_frames` fuzz target
/// runs it on an in-memory stream). Errors as for [`connect`].
pub async fn connect_stream<S>(
    stream: S,
    url: &str,
    cfg: WsConfig,
) -> Result<(WsReader, WsWriter), WsError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    client_handshake(client_request(url)?, shared::Conn::other(stream), &cfg).await
}

/// The server side over a byte stream a client is on: the handshake
/// [`WsListener::accept`] runs on each TCP connection (only
/// [`WsConfig::path`] is upgraded, within [`WsConfig::handshake_timeout`]), for other
/// streams (the `ws_frames` fuzz target runs it on an in-memory stream).
/// A failed handshake is `WsError::Handshake`.
pub async fn accept_stream<S>(stream: S, cfg: WsConfig) -> Result<(WsReader, WsWriter), WsError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    listener::server_handshake(shared::Conn::other(stream), &cfg).await
}

/// The handshake request for a `ws://` URL.
fn client_request(url: &str) -> Result<Request, WsError> {
    let request = url.into_client_request().map_err(handshake_error)?;
    if request.uri().scheme_str() != Some("ws") {
        return Err(WsError::Handshake("only ws:// URLs are supported".into()));
    }
    Ok(request)
}

/// The client side of the handshake, within [`WsConfig::handshake_timeout`].
async fn client_handshake(
    request: Request,
    conn: shared::Conn,
    cfg: &WsConfig,
) -> Result<(WsReader, WsWriter), WsError> {
    let handshake =
        tokio_tungstenite::client_async_with_config(request, conn, Some(cfg.tungstenite()));
    let (ws, _response) = tokio::time::timeout(cfg.handshake_timeout, handshake)
        .await
        .map_err(|_| timed_out(cfg.handshake_timeout))?
        .map_err(handshake_error)?;
    Ok(halves(ws, cfg))
}

/// Wraps an upgraded stream into its two halves.
fn halves(ws: shared::Ws, cfg: &WsConfig) -> (WsReader, WsWriter) {
    let shared = Arc::new(shared::Shared::new(ws));
    (
        WsReader::new(shared.clone(), cfg.ping_interval),
        WsWriter::new(shared, cfg.max_frame),
    )
}

fn timed_out(timeout: Duration) -> WsError {
    WsError::Handshake(format!("no handshake within {timeout:?}"))
}

/// Any failure during the handshake. tungstenite's messages are fixed
/// phrases (an HTTP refusal shows only its status), never the peer's bytes.
fn handshake_error(e: TError) -> WsError {
    match e {
        TError::Http(response) => WsError::Handshake(format!(
            "the server refused the upgrade with HTTP {}",
            response.status()
        )),
        other => WsError::Handshake(other.to_string()),
    }
}

/// A failure on an established connection.
fn connection_error(e: TError) -> WsError {
    use std::io::{Error, ErrorKind};
    match e {
        TError::Io(e) => WsError::Io(e),
        TError::Capacity(CapacityError::MessageTooLong { size, max_size }) => WsError::TooLarge {
            len: size,
            max: max_size,
        },
        TError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => WsError::Io(Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed without a close frame",
        )),
        TError::ConnectionClosed | TError::AlreadyClosed => {
            WsError::Io(Error::new(ErrorKind::NotConnected, "connection closed"))
        }
        TError::Protocol(ProtocolError::SendAfterClosing) => WsError::Io(Error::new(
            ErrorKind::BrokenPipe,
            "the connection is closing",
        )),
        TError::Utf8(_) => {
            WsError::Protocol("invalid UTF-8 in a text message or close reason".into())
        }
        other => WsError::Protocol(other.to_string()),
    }
}
