//! sealrpc's ZeroMQ transport: opaque frames over ROUTER/DEALER, with the
//! pure-Rust `zeromq` crate 0.7 (ZMTP 3, TCP only). It knows nothing of
//! keys, loads or traces: it moves frames and enforces one size limit and
//! one queue bound.
//!
//! # Shape
//!
//! The server binds a ROUTER ([`ZmqListener::bind`]); each client connects
//! a DEALER ([`connect`]). One frame is one single-part ZeroMQ message from
//! the DEALER, seen by the ROUTER as `[identity, payload]` (no empty
//! delimiter frame: this is DEALER↔ROUTER, not REQ↔REP). Because one ROUTER
//! multiplexes every peer, the server demultiplexes by routing identity
//! into per-peer *virtual connections*: [`ZmqListener::accept`] yields one
//! when a peer with an identity it has not seen completes its ZMTP
//! handshake (or, should that event be lost, sends its first frame), so a
//! DEALER that connects and then sends nothing is a connection too, which
//! the caller's own handshake timeout can end.
//!
//! On each side one background task owns the zeromq socket:
//! - **Server.** The task receives `[identity, payload]`, checks the shape
//!   and the size, and routes the payload into that peer's bounded queue
//!   ([`ZmqConfig::queue`] frames). Server writers send through one bounded
//!   channel (also `queue` commands) to the same task, which sends
//!   `[identity, payload]`.
//! - **Client.** The task owns the DEALER the same way (zeromq 0.7 can split
//!   a DEALER, but the disconnect signal comes from its monitor, so one task
//!   watching both is simpler).
//!
//! # Limits and failures
//!
//! - **Size.** An inbound frame over [`ZmqConfig::max_frame`] is dropped and
//!   fails that (virtual) connection with [`ZmqError::TooLarge`]; the server
//!   also disconnects that peer, the other peers are not affected. An
//!   outbound frame over the limit is refused with the same error before
//!   anything is queued; the writer stays usable. zeromq 0.7 itself has no
//!   maximum message size: it assembles a whole message, reserving the
//!   length each ZMTP frame header announces (a 64-bit length), before we
//!   see it. So a bound socket (ROUTER, PUB) is never exposed: zeromq binds
//!   on loopback and the [`gate`] accepts on the public address, scans the
//!   ZMTP framing each peer sends, and cuts a peer from the frame header
//!   that would take a message over twice `max_frame` (or a command over
//!   [`gate::MAX_COMMAND`]), before zeromq sees it. A message within that
//!   slack is buffered and then refused with `TooLarge` as above. So zeromq
//!   holds at most two × `max_frame` per peer while it reads a message.
//!   Connecting sockets (DEALER, SUB) have no gate: a malicious server can
//!   still make a client reserve what it announces.
//! - **Handshakes.** The gate cuts a peer whose ZMTP greeting and READY (and,
//!   on a ROUTER, first message) have not arrived within
//!   [`ZmqConfig::handshake_timeout`] (zeromq alone holds a peer that
//!   connects and sends nothing forever).
//! - **Stalled peers.** The gate also relays what zeromq sends each peer of
//!   a bound socket, and cuts (TCP reset) a peer whose socket has not
//!   taken a chunk of it (up to 8 KiB) within [`ZmqConfig::stall_timeout`]
//!   of filling up: zeromq then drops what it queued for that peer. Without it zeromq queues for
//!   a peer that stops reading without bound. A peer that reads slowly but
//!   keeps reading (a chunk per stall timeout) is not cut.
//! - **Inbound queue bound.** Each connection has a bounded queue of
//!   [`ZmqConfig::queue`] frames between the socket task and its reader.
//!   - Client: when it is full the task **stops pulling** from the DEALER, so
//!     TCP pushes back on the server. Nothing is dropped.
//!   - Server: one ROUTER socket serves every peer and cannot stop reading
//!     one peer alone, so a peer whose queue is full (`queue` frames, or
//!     `queue_bytes` bytes) is **dropped with a typed error**: its reader
//!     gets the frames already queued, then [`ZmqError::QueueFull`] or
//!     [`ZmqError::QueueBytesFull`], and the peer is disconnected. A caller that
//!     stops reading at some number of requests in flight (sealrpc's
//!     channel does) should set `queue` above that number.
//! - **Ends.** ZMTP has no close handshake; a TCP close is the only end
//!   signal, and zeromq reports it through its socket monitor. A peer that
//!   disconnects ends the reader with `Ok(None)` once the queued frames are
//!   read (a crash and a clean close look the same). Dropping the
//!   [`ZmqListener`] closes the ROUTER and ends every virtual connection
//!   with [`ZmqError::Closed`]. Ends and errors are sticky. A writer on an
//!   ended connection gets the same error (`Closed` for a plain end).
//! - **Close.** [`ZmqWriter::close`] hands every frame fed so far to zeromq,
//!   then disconnects this peer (server) or closes the DEALER (client); the
//!   peer sees `Ok(None)`, and so does our own reader. Dropping both halves
//!   of a connection does the same without waiting.
//! - **Flush.** [`ZmqWriter::feed`] queues a frame for the task (waiting
//!   while the queue is full: backpressure). [`ZmqWriter::flush`] returns
//!   once the task has handed every frame fed so far to zeromq. zeromq gives
//!   no signal of when bytes reach the wire; its own writer task sends them
//!   right after, in order.
//!
//! The `fuzzing` feature (off by default) exposes the inbound checks and the
//! ROUTER task's peer table without sockets (`src/fuzzing.rs`), for the
//! `zmq_frames` fuzz target.
//!
//! # Cancel safety
//!
//! [`ZmqReader::recv`] and [`ZmqListener::accept`] are cancel-safe: each
//! only waits on a tokio mpsc channel (behind a tokio mutex for `accept`).
//! The socket tasks `select!` over zeromq's `recv`, which is cancel-safe in
//! 0.7 (it only polls a fair queue of streams; nothing is taken until a
//! message is returned); every other branch waits on a channel. A cancelled
//! `feed` either queued its frame or did not; a cancelled `flush` or `close`
//! loses nothing but its answer.
//!
//! # Publish/subscribe
//!
//! [`ZmqPublisher::bind`] binds a PUB, [`ZmqSubscriber::connect`] connects
//! a SUB with a list of topic prefixes; each message is `[topic, payload]`
//! and [`ZmqConfig::max_frame`] bounds each of the two frames. Same design:
//! one task owns each socket, bounded channels in between. The limits
//! (details in `publisher.rs` and `subscriber.rs`):
//! - **Topics match as prefixes**, filtered at the publisher: terminate
//!   topics (`"m1\0"`), or `"m1"` also receives `"m10"`.
//! - **Best effort.** PUB drops, without any signal, what is published
//!   while no subscriber is connected, and what reaches a subscriber
//!   before its subscriptions do ("slow joiner": re-publish a probe until
//!   it is seen). zeromq's 100,000-message fanout queue also drops when
//!   full.
//! - **A slow subscriber's memory is bounded by time only.** zeromq's PUB
//!   queue per subscriber is meant to drop past 100,000 messages but in
//!   fact never does (it sends through a fresh sender clone each time); a
//!   subscriber that stops reading is cut at the stall timeout, so it
//!   holds what is published to it in that time.
//! - **SUB reconnects by itself** when the publisher restarts, and
//!   re-sends its subscriptions; nothing is reported, messages published
//!   meanwhile are lost. A bad inbound message (size, shape) is skipped
//!   with one error; the subscriber stays usable.
//!
//! # Missing (not built yet)
//!
//! - **Reconnection.** zeromq 0.7's DEALER does not reconnect after the
//!   server restarts (only its SUB socket does). A client whose server went
//!   away sees `Ok(None)`; connect again.
//! - **Outbound memory bound inside zeromq.** zeromq queues up to 100,000
//!   messages per peer internally (fixed, not configurable: there is no
//!   HWM). Our bounded queue sits above it. On the server, the task waits when
//!   one peer's zeromq queue is full, which then holds up sending to every
//!   peer; reaching that needs a peer that stops reading for 100,000 frames
//!   and is not cut first (stall timeout), or reads a little at a time.
//! - **Monitor overflow.** zeromq drops monitor events when its 1024-event
//!   channel is full. A lost `Disconnected` event would leave that virtual
//!   connection open until the listener is dropped. The task drains the
//!   monitor continuously, so this needs more than 1024 disconnects between
//!   two polls.
//! - **Identities set by peers.** A DEALER may choose its routing identity;
//!   two connected DEALERs with the same one are merged by zeromq (the newer
//!   one wins). Peers that set no identity get a random UUID from the ROUTER.
//! - IPC endpoints, CURVE/PLAIN security mechanisms, a connection cap,
//!   idle timeouts after the handshake (a PUB subscriber that completed
//!   ZMTP may stay silent: that is a normal idle subscriber), ZMTP
//!   heartbeats.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gate;
mod listener;
mod publisher;
mod pump;
mod reader;
mod shared;
mod subscriber;
mod writer;

pub use listener::ZmqListener;
pub use publisher::ZmqPublisher;
pub use pump::ACCEPT_BACKLOG;
pub use reader::ZmqReader;
pub use subscriber::ZmqSubscriber;
pub use writer::ZmqWriter;

use std::time::Duration;
use zeromq::{DealerSocket, Socket};

/// Default maximum frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Default bound of each per-connection queue, in frames.
pub const DEFAULT_QUEUE: usize = 1024;

/// Default bound of a server peer's inbound queue, in bytes.
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Transport failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZmqError {
    /// A frame over the size limit, inbound or outbound.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// A server peer sent frames faster than its reader took them and
    /// filled its queue: it was disconnected.
    #[error("the peer filled its {limit}-frame queue and was disconnected")]
    QueueFull { limit: usize },
    /// A server peer sent more bytes than its reader took, past the byte
    /// bound of its queue: it was disconnected.
    #[error("the peer filled its {limit}-byte queue and was disconnected")]
    QueueBytesFull { limit: usize },
    /// The peer broke the expected shape: a multipart message where one
    /// frame was expected.
    #[error("zeromq protocol error: {0}")]
    Protocol(String),
    /// The connection or the listener is closed.
    #[error("connection closed")]
    Closed,
    /// I/O, from connecting or binding.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Any other error of the zeromq crate, as text.
    #[error("zeromq: {0}")]
    Zmq(String),
}

impl ZmqError {
    /// The same error again, for sticky failures (`io::Error` is not `Clone`).
    pub(crate) fn again(&self) -> ZmqError {
        match self {
            ZmqError::TooLarge { len, max } => ZmqError::TooLarge {
                len: *len,
                max: *max,
            },
            ZmqError::QueueFull { limit } => ZmqError::QueueFull { limit: *limit },
            ZmqError::QueueBytesFull { limit } => ZmqError::QueueBytesFull { limit: *limit },
            ZmqError::Protocol(s) => ZmqError::Protocol(s.clone()),
            ZmqError::Closed => ZmqError::Closed,
            ZmqError::Io(e) => ZmqError::Io(std::io::Error::new(e.kind(), e.to_string())),
            ZmqError::Zmq(s) => ZmqError::Zmq(s.clone()),
        }
    }
}

impl From<zeromq::ZmqError> for ZmqError {
    fn from(e: zeromq::ZmqError) -> ZmqError {
        match e {
            zeromq::ZmqError::Network(e) => ZmqError::Io(e),
            other => ZmqError::Zmq(other.to_string()),
        }
    }
}

/// Default bound of the ZMTP handshake of an accepted connection.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time an accepted peer may stop reading before it is cut.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport settings.
#[derive(Clone, Debug)]
pub struct ZmqConfig {
    /// Largest frame payload accepted or sent.
    pub max_frame: usize,
    /// Bound of each per-connection queue, in frames (inbound: between the
    /// socket task and the reader; outbound: between the writers and the
    /// socket task). At least 1.
    pub queue: usize,
    /// How long the ZMTP handshake (greeting and READY) of a connection
    /// accepted by a bound socket (ROUTER, PUB) may take; a peer that has
    /// not finished it by then is disconnected.
    pub handshake_timeout: Duration,
    /// How long a peer of a bound socket (ROUTER, PUB) may stop reading
    /// what is sent to it: a peer whose socket has not taken a chunk (up
    /// to 8 KiB) within it is disconnected (with a TCP reset), and
    /// zeromq drops what it queued for it. zeromq queues for a peer that
    /// does not read without bound until then, so this bounds that memory
    /// to what is sent to the peer in this time (see [`gate`]).
    pub stall_timeout: Duration,
    /// Bound of a server peer's inbound queue in bytes, as `queue` bounds
    /// it in frames (at least `max_frame`): one ROUTER reads every peer and
    /// cannot push back on one, so a peer whose queued frames would pass
    /// this is dropped with [`ZmqError::QueueBytesFull`].
    pub queue_bytes: usize,
}

impl Default for ZmqConfig {
    fn default() -> Self {
        ZmqConfig {
            max_frame: DEFAULT_MAX_FRAME,
            queue: DEFAULT_QUEUE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

impl ZmqConfig {
    fn queue(&self) -> usize {
        self.queue.max(1)
    }

    fn queue_bytes(&self) -> usize {
        self.queue_bytes.max(self.max_frame)
    }

    /// The gate in front of a bound socket (see [`gate`]): a message may
    /// announce up to twice `max_frame` (the slack lets a message just over
    /// the limit reach our own check, which reports it as
    /// [`ZmqError::TooLarge`]; beyond it the peer is cut unread), and the
    /// ZMTP handshake (and, with `first_message`, the first message) must
    /// arrive within `handshake_timeout`, and a peer that stops reading is
    /// cut at `stall_timeout`.
    fn gate_policy(&self, first_message: bool) -> gate::GatePolicy {
        gate::GatePolicy {
            max_message: (self.max_frame as u64).saturating_mul(2),
            handshake_timeout: self.handshake_timeout,
            first_message,
            stall_timeout: self.stall_timeout,
        }
    }
}

/// Binds `socket` on loopback and the gate on `endpoint`'s address:
/// returns the public endpoint (`tcp://HOST:PORT`) and the gate.
async fn bind_gated<S: Socket>(
    socket: &mut S,
    endpoint: &str,
    policy: gate::GatePolicy,
) -> Result<(String, gate::Gate), ZmqError> {
    let public = endpoint
        .strip_prefix("tcp://")
        .ok_or_else(|| ZmqError::Zmq(format!("not a tcp:// endpoint: {endpoint}")))?;
    let inner = socket.bind("tcp://127.0.0.1:0").await?.to_string();
    let inner: std::net::SocketAddr = inner
        .strip_prefix("tcp://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ZmqError::Zmq(format!("unexpected bound endpoint {inner}")))?;
    let gate = gate::front(public, inner, policy).await?;
    Ok((format!("tcp://{}", gate.addr), gate))
}

/// Connects a DEALER to `endpoint` (`tcp://HOST:PORT`, as zeromq expects)
/// and returns the two halves.
///
/// A refused connection fails at once with `ZmqError::Io`: the caller
/// decides when to try again (sealrpc's channel backs off with jitter).
/// zeromq itself would retry on its own fixed schedule for up to 30 s, so
/// every client of a restarting server would come back in lockstep; a
/// plain TCP connect first (closed at once) finds out without it. Only a
/// server that goes away between the two connects meets zeromq's retries.
pub async fn connect(endpoint: &str, cfg: ZmqConfig) -> Result<(ZmqReader, ZmqWriter), ZmqError> {
    if let Some(addr) = endpoint.strip_prefix("tcp://") {
        drop(tokio::net::TcpStream::connect(addr).await?);
    }
    let mut socket = DealerSocket::new();
    // The monitor is the only way zeromq 0.7 reports that the server went
    // away; it must exist before the connection does.
    let monitor = socket.monitor();
    socket.connect(endpoint).await?;
    Ok(pump::spawn_client(socket, monitor, &cfg))
}
