//! The publish side of transports that have their own fan-out (ZeroMQ
//! PUB/SUB, with topic filtering at the publisher). TCP and WebSocket have
//! none: the channel publishes down each minion's own connection instead.
use super::TransportError;
use bytes::{Bytes, BytesMut};
use sealrpc_zmq::{ZmqPublisher, ZmqSubscriber};
use std::net::SocketAddr;

/// A bound ZeroMQ PUB socket.
pub struct Publisher {
    inner: ZmqPublisher,
}

impl Publisher {
    /// Binds a PUB socket on `addr` (`HOST:PORT`, port 0 = any free port).
    pub async fn bind_zmq(addr: &str, max_frame: usize) -> Result<Publisher, TransportError> {
        Publisher::bind_zmq_with(addr, max_frame, super::DEFAULT_HANDSHAKE_TIMEOUT).await
    }

    /// As [`Publisher::bind_zmq`]; a subscriber whose ZMTP handshake
    /// (greeting and READY) takes longer than `handshake_timeout` is dropped.
    pub async fn bind_zmq_with(
        addr: &str,
        max_frame: usize,
        handshake_timeout: std::time::Duration,
    ) -> Result<Publisher, TransportError> {
        let cfg = super::zmq::server_config(max_frame, handshake_timeout);
        let inner = ZmqPublisher::bind(&format!("tcp://{addr}"), cfg).await?;
        Ok(Publisher { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        let ep = self.inner.local_endpoint();
        ep.trim_start_matches("tcp://")
            .parse()
            .map_err(|_| TransportError::Protocol(format!("unexpected zmq endpoint {ep}")))
    }

    /// Sends `frame` to every subscriber of a prefix of `topic`.
    pub async fn publish(&self, topic: &[u8], frame: Bytes) -> Result<(), TransportError> {
        Ok(self.inner.publish(topic, frame).await?)
    }
}

/// A connected ZeroMQ SUB socket (it reconnects by itself).
pub struct Subscriber {
    inner: ZmqSubscriber,
}

impl Subscriber {
    /// Connects to the PUB socket at `addr`, subscribed to `topics`.
    pub async fn connect_zmq(
        addr: SocketAddr,
        topics: &[&str],
        max_frame: usize,
    ) -> Result<Subscriber, TransportError> {
        let inner = ZmqSubscriber::connect(
            &format!("tcp://{addr}"),
            topics,
            super::zmq::config(max_frame),
        )
        .await?;
        Ok(Subscriber { inner })
    }

    /// The next frame. An error for which [`skippable`] holds cost only
    /// that message; any other ends the subscription.
    pub async fn recv(&mut self) -> Result<BytesMut, TransportError> {
        let (_topic, frame) = self.inner.recv().await?;
        Ok(frame)
    }
}

/// Whether a [`Subscriber::recv`] error concerns one message only.
pub fn skippable(e: &TransportError) -> bool {
    matches!(
        e,
        TransportError::TooLarge { .. } | TransportError::Protocol(_)
    )
}
