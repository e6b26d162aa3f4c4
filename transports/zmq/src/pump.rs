//! The socket tasks: one owns a client's DEALER, one owns a server's
//! ROUTER and demultiplexes it into virtual connections.
use crate::shared::{connection, Cmd, ConnKey, End, Op, Parts, State};
use crate::{ZmqConfig, ZmqError, ZmqReader, ZmqWriter};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::collections::HashMap;
use tokio::sync::mpsc;
use zeromq::util::PeerIdentity;
use zeromq::{DealerSocket, RouterSocket, Socket, SocketEvent, SocketRecv, SocketSend, ZmqMessage};

type Monitor = futures::channel::mpsc::Receiver<SocketEvent>;

/// Checks one received payload against the limit.
fn check_size(payload: &Bytes, max: usize) -> Result<(), ZmqError> {
    if payload.len() > max {
        return Err(ZmqError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    Ok(())
}

/// zeromq hands out `Bytes`; readers get `BytesMut` (copied unless unique).
fn to_mut(payload: Bytes) -> BytesMut {
    BytesMut::from(payload)
}

// ---------------------------------------------------------------- client

/// Starts the task owning a connected DEALER and returns the halves.
pub(crate) fn spawn_client(
    socket: DealerSocket,
    monitor: Monitor,
    cfg: &ZmqConfig,
) -> (ZmqReader, ZmqWriter) {
    let (cmd_tx, cmds) = mpsc::channel(cfg.queue());
    let (gone_tx, gone) = mpsc::unbounded_channel();
    let key = ConnKey {
        identity: Bytes::new(),
        id: 0,
    };
    let (reader, writer, parts) = connection(key, cfg.queue(), cfg.max_frame, cmd_tx, gone_tx);
    tokio::spawn(run_client(
        socket,
        monitor,
        cmds,
        gone,
        parts,
        cfg.max_frame,
    ));
    (reader, writer)
}

/// One DEALER, one connection. A full reader queue stops the pulling from
/// zeromq (TCP then pushes back on the server); nothing is dropped.
async fn run_client(
    mut socket: DealerSocket,
    mut monitor: Monitor,
    mut cmds: mpsc::Receiver<Cmd>,
    mut gone: mpsc::UnboundedReceiver<ConnKey>,
    parts: Parts,
    max_frame: usize,
) {
    let Parts { state, frames } = parts;
    // Room for one frame in the reader's queue, reserved before pulling a
    // message from zeromq, so a message is never taken without a place.
    let mut permit = None;
    let mut reading = true;
    let end = loop {
        tokio::select! {
            biased;
            Some(_) = gone.recv() => break End::Disconnected,
            event = monitor.next() => match event {
                Some(SocketEvent::Disconnected(_)) | None => {
                    if reading {
                        deliver_queued(&mut socket, &frames, &state, permit.take(), max_frame).await;
                    }
                    break End::Disconnected;
                }
                Some(_) => {}
            },
            Some(cmd) = cmds.recv() => match cmd.op {
                Op::Frame(payload) => {
                    if let Err(e) = socket.send(ZmqMessage::from(payload)).await {
                        break failure(e);
                    }
                }
                Op::Flush(ack) => {
                    let _ = ack.send(Ok(()));
                }
                Op::Close(ack) => {
                    let _ = ack.send(Ok(()));
                    break End::Disconnected;
                }
            },
            p = frames.reserve(), if reading && permit.is_none() => match p {
                Ok(p) => permit = Some(p),
                // The reader is gone: stop reading, keep serving the writer.
                Err(_) => reading = false,
            },
            msg = socket.recv(), if permit.is_some() => {
                let msg = match msg {
                    Ok(msg) => msg,
                    Err(e) => break failure(e),
                };
                let payload = match single_frame(msg, max_frame) {
                    Ok(payload) => payload,
                    Err(e) => break End::Failed(e),
                };
                if let Some(p) = permit.take() {
                    state.queue_bytes(payload.len());
                    p.send(payload);
                }
            }
        }
    };
    state.end(end);
    // Dropping the DEALER closes the connection; frames zeromq still has
    // queued are written by its writer task first.
}

/// zeromq reports a disconnect as soon as it reads the end of the stream,
/// while messages it read before it are still queued in the socket (a
/// server's last reply before it closed): hand those to the reader, as far
/// as its queue has room, before the connection ends.
async fn deliver_queued(
    socket: &mut DealerSocket,
    frames: &mpsc::Sender<BytesMut>,
    state: &State,
    mut permit: Option<mpsc::Permit<'_, BytesMut>>,
    max_frame: usize,
) {
    loop {
        let p = match permit.take() {
            Some(p) => p,
            None => match frames.try_reserve() {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        // Polled once: only what is already queued.
        match tokio::time::timeout(std::time::Duration::ZERO, socket.recv()).await {
            Ok(Ok(msg)) => match single_frame(msg, max_frame) {
                Ok(payload) => {
                    state.queue_bytes(payload.len());
                    p.send(payload);
                }
                Err(_) => return,
            },
            _ => return,
        }
    }
}

/// A message the DEALER received: exactly one frame, within the limit.
pub(crate) fn single_frame(msg: ZmqMessage, max_frame: usize) -> Result<BytesMut, ZmqError> {
    if msg.len() != 1 {
        return Err(ZmqError::Protocol(format!(
            "expected a one-part message, got {} parts",
            msg.len()
        )));
    }
    let payload = msg.into_vecdeque().pop_front().unwrap_or_default();
    check_size(&payload, max_frame)?;
    Ok(to_mut(payload))
}

/// A send or receive failure of the socket itself.
fn failure(e: zeromq::ZmqError) -> End {
    match e {
        // The peer is gone (zeromq has no peer to send to).
        zeromq::ZmqError::ReturnToSender { .. } | zeromq::ZmqError::BufferFull(_) => {
            End::Disconnected
        }
        other => End::Failed(other.into()),
    }
}

// ---------------------------------------------------------------- server

/// A new virtual connection, as `accept` hands it out.
pub(crate) type Accepted = (ZmqReader, ZmqWriter, String);

/// At most this many connections wait for `accept`; a new peer beyond
/// that is disconnected.
pub const ACCEPT_BACKLOG: usize = 1024;

/// What the task keeps of one virtual connection.
struct Peer {
    id: u64,
    parts: Parts,
}

/// What the ROUTER task's peer table needs of its socket: disconnecting
/// one peer. Everything else it does (receiving, sending) is in
/// `Router::run`, so the table itself runs without a socket too (the
/// `fuzzing` feature's `RouterDemux`).
pub(crate) trait Kick {
    /// Disconnects the peer with `identity`: zeromq drops its streams, its
    /// writer task writes what it has queued, and the TCP connection closes.
    fn kick(&mut self, identity: &Bytes);
}

impl Kick for RouterSocket {
    fn kick(&mut self, identity: &Bytes) {
        if let Ok(peer) = PeerIdentity::try_from(identity.clone()) {
            self.backend().peer_disconnected(&peer);
        }
    }
}

pub(crate) struct Router<S = RouterSocket> {
    socket: S,
    peers: HashMap<Bytes, Peer>,
    next_id: u64,
    cfg: ZmqConfig,
    cmd_tx: mpsc::Sender<Cmd>,
    gone_tx: mpsc::UnboundedSender<ConnKey>,
    accept: mpsc::Sender<Accepted>,
}

/// Starts the task owning a bound ROUTER; returns the accept queue.
pub(crate) fn spawn_server(
    socket: RouterSocket,
    monitor: Monitor,
    cfg: &ZmqConfig,
) -> mpsc::Receiver<Accepted> {
    let (router, channels) = Router::new(socket, cfg);
    tokio::spawn(router.run(monitor, channels.cmds, channels.gone));
    channels.accepted
}

/// The receiving ends of a [`Router`]'s channels.
pub(crate) struct RouterChannels {
    /// Commands from the writers of every connection.
    pub(crate) cmds: mpsc::Receiver<Cmd>,
    /// Connections whose two halves were both dropped.
    pub(crate) gone: mpsc::UnboundedReceiver<ConnKey>,
    /// New connections, for `accept`.
    pub(crate) accepted: mpsc::Receiver<Accepted>,
}

impl Router<RouterSocket> {
    async fn run(
        mut self,
        mut monitor: Monitor,
        mut cmds: mpsc::Receiver<Cmd>,
        mut gone: mpsc::UnboundedReceiver<ConnKey>,
    ) {
        let accept = self.accept.clone();
        loop {
            tokio::select! {
                biased;
                // The listener was dropped: close everything.
                () = accept.closed() => break,
                Some(key) = gone.recv() => self.gone(&key),
                event = monitor.next() => match event {
                    Some(SocketEvent::Disconnected(peer)) => self.disconnected(Bytes::from(peer)),
                    Some(_) => {}
                    None => break,
                },
                Some(cmd) = cmds.recv() => self.command(cmd).await,
                msg = self.socket.recv() => match msg {
                    Ok(msg) => self.inbound(msg),
                    Err(_) => break,
                },
            }
        }
        self.shutdown();
        // Dropping the ROUTER unbinds it and closes every peer's connection.
    }

    async fn command(&mut self, cmd: Cmd) {
        let Cmd { key, op } = cmd;
        let current = self.is_current(&key);
        match op {
            // A frame for an ended connection: its writer sees the end at
            // its next call.
            Op::Frame(_) if !current => {}
            Op::Frame(payload) => {
                let mut msg = ZmqMessage::from(key.identity.clone());
                msg.push_back(payload);
                if let Err(e) = self.socket.send(msg).await {
                    let end = match failure(e) {
                        End::Failed(e) => End::Failed(e),
                        _ => End::Disconnected,
                    };
                    self.drop_peer(&key.identity, end, true);
                }
            }
            Op::Flush(ack) => {
                let res = match self.peers.get(&key.identity) {
                    Some(peer) if peer.id == key.id => peer.parts.state.check_open(),
                    _ => Err(ZmqError::Closed),
                };
                let _ = ack.send(res);
            }
            Op::Close(ack) => {
                if current {
                    self.drop_peer(&key.identity, End::Disconnected, true);
                }
                let _ = ack.send(Ok(()));
            }
        }
    }
}

impl<S: Kick> Router<S> {
    /// The peer table over `socket`, and the receiving ends of its channels.
    pub(crate) fn new(socket: S, cfg: &ZmqConfig) -> (Router<S>, RouterChannels) {
        let (cmd_tx, cmds) = mpsc::channel(cfg.queue());
        let (gone_tx, gone) = mpsc::unbounded_channel();
        let (accept, accepted) = mpsc::channel(ACCEPT_BACKLOG);
        let router = Router {
            socket,
            peers: HashMap::new(),
            next_id: 0,
            cfg: cfg.clone(),
            cmd_tx,
            gone_tx,
            accept,
        };
        let channels = RouterChannels {
            cmds,
            gone,
            accepted,
        };
        (router, channels)
    }

    /// Both halves of the connection `key` were dropped: disconnect the
    /// peer, unless that connection has ended already.
    pub(crate) fn gone(&mut self, key: &ConnKey) {
        if self.is_current(key) {
            self.drop_peer(&key.identity, End::Disconnected, true);
        }
    }

    /// zeromq reports the peer with `identity` disconnected.
    pub(crate) fn disconnected(&mut self, identity: Bytes) {
        self.drop_peer(&identity, End::Disconnected, false);
    }

    /// The socket (or its stand-in without one).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// The socket is going away: every connection ends with `Closed`.
    pub(crate) fn shutdown(&mut self) {
        for (_, peer) in self.peers.drain() {
            peer.parts.state.end(End::Shutdown);
        }
    }

    fn is_current(&self, key: &ConnKey) -> bool {
        self.peers
            .get(&key.identity)
            .is_some_and(|peer| peer.id == key.id)
    }

    /// Ends a virtual connection (its reader first drains what is queued)
    /// and, if `kick`, disconnects the peer inside zeromq too.
    fn drop_peer(&mut self, identity: &Bytes, end: End, kick: bool) {
        if let Some(peer) = self.peers.remove(identity) {
            peer.parts.state.end(end);
        }
        if kick {
            self.socket.kick(identity);
        }
    }

    /// One `[identity, payload]` message from the ROUTER.
    pub(crate) fn inbound(&mut self, msg: ZmqMessage) {
        let mut parts = msg.into_vecdeque();
        let Some(identity) = parts.pop_front() else {
            return;
        };
        if parts.len() != 1 {
            let e = ZmqError::Protocol(format!(
                "expected a one-part message, got {} parts",
                parts.len()
            ));
            return self.drop_peer(&identity, End::Failed(e), true);
        }
        let payload = parts.pop_front().unwrap_or_default();
        if let Err(e) = check_size(&payload, self.cfg.max_frame) {
            return self.drop_peer(&identity, End::Failed(e), true);
        }
        if !self.peers.contains_key(&identity) && !self.open(identity.clone()) {
            return;
        }
        let Some(peer) = self.peers.get(&identity) else {
            return;
        };
        let (len, state) = (payload.len(), peer.parts.state.clone());
        if state.queue_bytes(len) > self.cfg.queue_bytes() {
            state.unqueue_bytes(len);
            let limit = self.cfg.queue_bytes();
            return self.drop_peer(
                &identity,
                End::Failed(ZmqError::QueueBytesFull { limit }),
                true,
            );
        }
        match peer.parts.frames.try_send(to_mut(payload)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                state.unqueue_bytes(len);
                let limit = self.cfg.queue();
                self.drop_peer(&identity, End::Failed(ZmqError::QueueFull { limit }), true);
            }
            // The reader was dropped, the writer may still be in use: like
            // a socket whose read side nobody reads, inbound is discarded.
            Err(mpsc::error::TrySendError::Closed(_)) => state.unqueue_bytes(len),
        }
    }

    /// A new identity: makes its virtual connection and hands it to
    /// `accept`. `false` if the accept backlog is full (peer dropped).
    fn open(&mut self, identity: Bytes) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let key = ConnKey {
            identity: identity.clone(),
            id,
        };
        let (reader, writer, parts) = connection(
            key,
            self.cfg.queue(),
            self.cfg.max_frame,
            self.cmd_tx.clone(),
            self.gone_tx.clone(),
        );
        let name = hex::encode(&identity);
        // Inserted first: the halves may be dropped (and report gone) at once.
        self.peers.insert(identity.clone(), Peer { id, parts });
        if self.accept.try_send((reader, writer, name)).is_err() {
            self.drop_peer(&identity, End::Shutdown, true);
            return false;
        }
        true
    }
}
