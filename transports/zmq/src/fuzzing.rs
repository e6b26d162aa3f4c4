//! Hooks for the `zmq_frames` fuzz target (feature `fuzzing`, off by
//! default): the inbound code that is sealrpc's own, run without sockets.
//!
//! - [`RouterDemux`]: the ROUTER task's peer table, exactly as the task
//!   runs it ([`crate::ZmqListener`]), minus the socket: `[identity,
//!   payload]` messages in, virtual connections and their frames out, with
//!   the shape and size checks, the per-connection queue bound and the
//!   disconnects it asks of zeromq (recorded instead of performed).
//! - [`dealer_message`] and [`subscriber_message`]: the checks the client
//!   and SUB tasks apply to each received message.
//!
//! zeromq's own ZMTP decoding, which produces these messages from bytes,
//! is not here; the fuzz target drives it separately.
use crate::pump::{self, Accepted, Kick, Router, RouterChannels};
use crate::{ZmqConfig, ZmqError, ZmqReader, ZmqWriter};
use bytes::{Bytes, BytesMut};
use zeromq::ZmqMessage;

/// Records the disconnects the peer table asks for.
#[derive(Default)]
struct Kicks(Vec<Bytes>);

impl Kick for Kicks {
    fn kick(&mut self, identity: &Bytes) {
        self.0.push(identity.clone());
    }
}

/// The ROUTER task's peer table without a socket. Nothing here needs a
/// tokio runtime: readers return what is queued when polled once.
pub struct RouterDemux {
    router: Router<Kicks>,
    channels: RouterChannels,
}

impl RouterDemux {
    /// A peer table with `cfg`'s frame limit and queue bound.
    pub fn new(cfg: &ZmqConfig) -> RouterDemux {
        let (router, channels) = Router::new(Kicks::default(), cfg);
        RouterDemux { router, channels }
    }

    /// One message as the ROUTER socket returns it: the peer's identity,
    /// then the frames the peer sent.
    pub fn inbound(&mut self, msg: ZmqMessage) {
        self.router.inbound(msg);
    }

    /// zeromq's monitor reports the peer with `identity` disconnected.
    pub fn disconnected(&mut self, identity: Bytes) {
        self.router.disconnected(identity);
    }

    /// Handles the connections whose two halves were dropped since the
    /// last call, as the task does when it is woken for them.
    pub fn handle_gone(&mut self) {
        while let Ok(key) = self.channels.gone.try_recv() {
            self.router.gone(&key);
        }
    }

    /// The next connection `accept` would return: its reader, its writer
    /// and the peer's identity in hex.
    pub fn accept(&mut self) -> Option<(ZmqReader, ZmqWriter, String)> {
        let accepted: Accepted = self.channels.accepted.try_recv().ok()?;
        Some(accepted)
    }

    /// The identities the table asked zeromq to disconnect since the last
    /// call, in order.
    pub fn take_kicked(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.router.socket_mut().0)
    }

    /// The listener is dropped: every connection ends.
    pub fn shutdown(&mut self) {
        self.router.shutdown();
    }
}

/// The client task's check of one message from the server: exactly one
/// frame, within `max_frame`; an error ends the connection.
pub fn dealer_message(msg: ZmqMessage, max_frame: usize) -> Result<BytesMut, ZmqError> {
    pump::single_frame(msg, max_frame)
}

/// The SUB task's check of one message: `[topic, payload]`, each within
/// `max_frame`; an error skips that message.
pub fn subscriber_message(
    msg: ZmqMessage,
    max_frame: usize,
) -> Result<(Bytes, BytesMut), ZmqError> {
    crate::subscriber::check(msg, max_frame)
}
