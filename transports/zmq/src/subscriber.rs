//! The subscribe side: a connected SUB socket owned by one task, which
//! checks each message and passes it on through a bounded channel.
//!
//! # Shape
//!
//! [`ZmqSubscriber::connect`] registers the first topic prefix before
//! connecting (the first thing sent to the publisher) and the others, in
//! order, once connected. The publisher handles one peer's subscriptions
//! in order, so a message received on the *last* topic proves that every
//! topic is active (a probe on it ends ZeroMQ's "slow joiner" wait). After
//! a silent reconnect zeromq re-sends them all, in no particular order.
//! Topics match as prefixes, at the publisher (see `publisher.rs`):
//! terminate them, e.g. `"m1\0"`, so that `"m1"` does not match `"m10"`;
//! `""` subscribes to everything, no topic at all to nothing.
//!
//! The task reserves room in the channel ([`ZmqConfig::queue`] results)
//! *before* taking a message from zeromq, so a reader that stops reading
//! stops the pulling, and TCP pushes back on the publisher (whose zeromq
//! then queues for us, until its gate cuts us at its stall timeout and our
//! zeromq reconnects: see the publisher's limits).
//!
//! # Limits (zeromq 0.7)
//!
//! - **Bad messages are skipped, not fatal.** A message not of exactly two
//!   frames gives one [`ZmqError::Protocol`], one with a frame over
//!   [`ZmqConfig::max_frame`] one [`ZmqError::TooLarge`]; the next `recv`
//!   goes on with the next message. As on ROUTER/DEALER, zeromq has already
//!   buffered the whole message by then: the size check bounds what is
//!   queued, not what zeromq allocates (see the crate's caveat).
//! - **Reconnection.** The first connection must succeed within zeromq's
//!   30 s connect timeout. After that, zeromq's SUB reconnects by itself
//!   when the publisher goes away (backoff from 100 ms up to 30 s, forever)
//!   and re-sends every subscription. Nothing is reported: messages
//!   published meanwhile are lost, and `recv` just waits. If the connection
//!   breaks with an I/O or ZMTP error (not a clean close), `recv` returns
//!   that error once ([`ZmqError::Io`] or [`ZmqError::Zmq`]) and zeromq
//!   reconnects all the same.
//! - **Ends.** [`ZmqError::Closed`] (sticky) only if the socket task
//!   stopped, which zeromq 0.7 gives no reason for while the subscriber
//!   exists. Dropping the subscriber stops the task and closes the socket.
use crate::{ZmqConfig, ZmqError};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use zeromq::{Socket, SocketRecv, SubSocket, ZmqMessage};

/// One result of the socket task: a message, or why one was skipped.
type Item = Result<(Bytes, BytesMut), ZmqError>;

/// A connected SUB socket and its subscriptions.
pub struct ZmqSubscriber {
    items: mpsc::Receiver<Item>,
}

impl std::fmt::Debug for ZmqSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqSubscriber")
            .field("queued", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl ZmqSubscriber {
    /// Subscribes to every topic prefix in `topics`, connects a SUB socket
    /// to `endpoint` (`tcp://HOST:PORT`) and starts its task. zeromq retries
    /// a refused connection with backoff for up to 30 s before failing.
    pub async fn connect(
        endpoint: &str,
        topics: &[&str],
        cfg: ZmqConfig,
    ) -> Result<ZmqSubscriber, ZmqError> {
        let mut socket = SubSocket::new();
        // With no peer yet, this only records the topic; zeromq sends every
        // recorded topic to each publisher it connects (or reconnects) to,
        // in no particular order.
        let (first, rest) = topics
            .split_first()
            .map_or((None, &[][..]), |(f, r)| (Some(f), r));
        if let Some(topic) = first {
            socket.subscribe(topic).await?;
        }
        // Returns once the ZMTP handshake is done and the recorded topic sent.
        socket.connect(endpoint).await?;
        // Sent in order on the live connection, after the first: the
        // publisher handles one peer's subscriptions in order, so a message
        // received on the last topic proves every earlier one is active.
        for topic in rest {
            socket.subscribe(topic).await?;
        }
        let (tx, items) = mpsc::channel(cfg.queue());
        tokio::spawn(run(socket, tx, cfg.max_frame));
        Ok(ZmqSubscriber { items })
    }

    /// The next message, `(topic, payload)`, in the order the publisher
    /// sent them. An error other than [`ZmqError::Closed`] concerns one
    /// message or one broken connection (see the module's limits); the
    /// subscriber stays usable. `Closed` once the socket task stopped.
    /// Cancel-safe: it only waits on a channel.
    pub async fn recv(&mut self) -> Result<(Bytes, BytesMut), ZmqError> {
        self.items.recv().await.unwrap_or(Err(ZmqError::Closed))
    }
}

/// Pulls messages while there is room for them, until the subscriber is
/// dropped. Dropping the socket stops zeromq's reconnection too.
async fn run(mut socket: SubSocket, tx: mpsc::Sender<Item>, max_frame: usize) {
    let mut permit = None;
    loop {
        tokio::select! {
            biased;
            () = tx.closed() => return,
            p = tx.reserve(), if permit.is_none() => match p {
                Ok(p) => permit = Some(p),
                Err(_) => return,
            },
            // Cancel-safe in 0.7 (a fair queue poll takes nothing until it
            // returns a message); only cancelled here when we stop anyway.
            msg = socket.recv(), if permit.is_some() => {
                let item = match msg {
                    Ok(msg) => check(msg, max_frame),
                    // Only when no connection exists and zeromq is told not
                    // to wait for one, which SUB never is: treat as the end.
                    Err(zeromq::ZmqError::NoMessage) => return,
                    // That connection is dropped and zeromq reconnects.
                    Err(e) => Err(e.into()),
                };
                if let Some(p) = permit.take() {
                    p.send(item);
                }
            }
        }
    }
}

/// Splits `[topic, payload]` and checks the shape and the sizes.
pub(crate) fn check(msg: ZmqMessage, max_frame: usize) -> Item {
    if msg.len() != 2 {
        return Err(ZmqError::Protocol(format!(
            "expected a [topic, payload] message, got {} parts",
            msg.len()
        )));
    }
    let mut parts = msg.into_vecdeque();
    let topic = parts.pop_front().unwrap_or_default();
    let payload = parts.pop_front().unwrap_or_default();
    for len in [topic.len(), payload.len()] {
        if len > max_frame {
            return Err(ZmqError::TooLarge {
                len,
                max: max_frame,
            });
        }
    }
    Ok((topic, BytesMut::from(payload)))
}
