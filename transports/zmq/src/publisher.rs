//! The publish side: a bound PUB socket owned by one task, fed through a
//! bounded channel.
//!
//! # Shape
//!
//! Every message is two frames, `[topic, payload]`. zeromq's PUB filters at
//! the publisher: it sends a message to a subscriber only if one of that
//! subscriber's subscriptions is a **prefix** of the topic frame. Topics
//! match as prefixes, so callers should terminate them (with a NUL or a
//! `'\n'`): a subscription to `"m1"` also receives `"m10"`, one to `"m1\0"`
//! does not receive `"m10\0"`. An empty subscription receives everything.
//!
//! [`ZmqPublisher::publish`] checks the size and puts the message in a
//! bounded queue of [`ZmqConfig::queue`] messages (waiting while it is
//! full); the task takes messages from it in order and hands them to
//! zeromq. zeromq's `PubSocket::send` needs `&mut`, hence the owning task;
//! [`ZmqPublisher`] is `Clone`, every clone feeding the same task. When the
//! last clone is dropped the task drops the socket, which unbinds it and
//! closes every subscriber's connection (the subscribers then reconnect,
//! see `subscriber.rs`).
//!
//! # Limits (zeromq 0.7)
//!
//! - **Delivery is best effort, with no signal.** zeromq's `send` returns at
//!   once: a message published while no subscriber is connected is
//!   dropped; so is one published while zeromq's own 100,000-message fanout
//!   queue is full. `publish` returning `Ok` means "handed to zeromq", never
//!   "delivered".
//! - **Slow joiners.** A subscriber's subscriptions reach the publisher
//!   after its TCP connection, processed by a zeromq task of their own:
//!   messages published in between are not sent to it. Wait for a
//!   subscriber by re-publishing a probe until it sees one.
//! - **Memory per slow subscriber is bounded by time, not size.** zeromq
//!   gives each subscriber a 100,000-message queue meant to drop when
//!   full, but it sends through a fresh clone of the queue's sender every
//!   time, and a fresh clone of a `futures` bounded sender always has
//!   room: nothing is ever dropped there. A subscriber that stops reading
//!   (its TCP window closed) makes that queue grow with every message
//!   published to it until the gate cuts it, at
//!   [`ZmqConfig::stall_timeout`] (`gate.rs`); zeromq then drops the queue.
//!   Our bounded queue limits only what waits for the task.
//! - **Size.** [`ZmqConfig::max_frame`] bounds each frame (topic and
//!   payload), checked before queueing: [`ZmqError::TooLarge`], and the
//!   publisher stays usable.
use crate::{ZmqConfig, ZmqError};
use bytes::Bytes;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

/// A bound PUB socket. Cheap to clone; every clone publishes through the
/// same socket, in the order `publish` calls queue their messages.
#[derive(Clone)]
pub struct ZmqPublisher {
    endpoint: String,
    max_frame: usize,
    queue: mpsc::Sender<ZmqMessage>,
    /// Why the task stopped, if it failed (sticky).
    failed: Arc<Mutex<Option<ZmqError>>>,
    /// Subscribers connect to the gate, which relays to the PUB socket.
    _gate: Arc<crate::gate::Gate>,
}

impl std::fmt::Debug for ZmqPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqPublisher")
            .field("endpoint", &self.endpoint)
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl ZmqPublisher {
    /// Binds a PUB socket on `endpoint` (`tcp://HOST:PORT`; port 0 picks a
    /// free port) and starts its task.
    pub async fn bind(endpoint: &str, cfg: ZmqConfig) -> Result<ZmqPublisher, ZmqError> {
        let mut socket = PubSocket::new();
        let (bound, gate) =
            crate::bind_gated(&mut socket, endpoint, cfg.gate_policy(false)).await?;
        let (queue, messages) = mpsc::channel(cfg.queue());
        let failed = Arc::new(Mutex::new(None));
        tokio::spawn(run(socket, messages, failed.clone()));
        Ok(ZmqPublisher {
            endpoint: bound,
            _gate: Arc::new(gate),
            max_frame: cfg.max_frame,
            queue,
            failed,
        })
    }

    /// The bound endpoint, with the real port when bound to port 0
    /// (`tcp://127.0.0.1:PORT`).
    pub fn local_endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Publishes one message `[topic, payload]`. A topic or payload over
    /// [`ZmqConfig::max_frame`] is refused with [`ZmqError::TooLarge`]
    /// before anything is queued. Waits while the queue to the socket task
    /// is full (backpressure). `Ok` means queued for zeromq, not delivered
    /// (see the module's limits). Cancel-safe: a cancelled call either
    /// queued its message or did not.
    pub async fn publish(&self, topic: &[u8], payload: Bytes) -> Result<(), ZmqError> {
        for len in [topic.len(), payload.len()] {
            if len > self.max_frame {
                return Err(ZmqError::TooLarge {
                    len,
                    max: self.max_frame,
                });
            }
        }
        let mut msg = ZmqMessage::from(Bytes::copy_from_slice(topic));
        msg.push_back(payload);
        if self.queue.send(msg).await.is_err() {
            let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            return Err(failed.as_ref().map_or(ZmqError::Closed, ZmqError::again));
        }
        Ok(())
    }
}

/// Hands queued messages to zeromq until every publisher is dropped (or
/// zeromq fails, which 0.7's PUB never does); dropping the socket unbinds.
async fn run(
    mut socket: PubSocket,
    mut messages: mpsc::Receiver<ZmqMessage>,
    failed: Arc<Mutex<Option<ZmqError>>>,
) {
    while let Some(msg) = messages.recv().await {
        if let Err(e) = socket.send(msg).await {
            *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.into());
            return;
        }
    }
}
