//! One live client connection: the outbox it seals into, the calls waiting
//! for replies, and the task that reads, opens and dispatches replies.
use super::auth::{self, Principal};
use super::config::{random_salt, ChannelConfig};
use super::outbox::Outbox;
use super::publish::{decode_published, Published};
use super::waiting::Waiting;
use crate::error::{Error, WireError};
use crate::transport::{self, Endpoint, FrameRecv};
use crate::wire::envelope::unix_ms;
use crate::wire::header::AlertCode;
use crate::wire::load::{self, ReplyLoad, ReplyStatus};
use crate::wire::{Kind, Opener, Sealer, SealerLimits, SessionRegistry};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A connection. Dropping it closes the connection (its outbox).
pub(crate) struct Connection {
    pub(crate) waiting: Arc<Waiting>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) peer: SocketAddr,
    /// `peer` as span attributes (tracing on only), formatted once.
    pub(crate) peer_attrs: Option<crate::telemetry::PeerAttrs>,
    /// The server as the handshake authenticated it (identity mode).
    pub(crate) principal: Option<Arc<Principal>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.outbox.close();
    }
}

impl Connection {
    /// Connects and starts the writer and reader tasks.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        cfg: &ChannelConfig,
        publishes: Option<mpsc::Sender<Published>>,
    ) -> Result<Connection, Error> {
        let (mut reader, mut writer, peer) = transport::connect(endpoint, cfg.max_frame).await?;
        let (key, keyring, principal) = match &cfg.identity {
            Some(identity) => {
                let s = auth::initiate(
                    &mut reader,
                    &mut writer,
                    identity,
                    cfg.max_frame,
                    cfg.handshake_timeout,
                )
                .await?;
                (s.send, s.recv, Some(Arc::new(s.peer)))
            }
            None => (cfg.key.clone(), cfg.keyring.clone(), None),
        };
        let salt = random_salt();
        let outbox = Outbox::new(Sealer::new(key, salt), cfg.max_frame);
        tokio::spawn(outbox.clone().run_writer(writer));
        let registry = Arc::new(SessionRegistry::new(cfg.ttl_ms(), 64));
        let mut opener = Opener::new(keyring, registry, Kind::Reply, cfg.ttl_ms(), cfg.max_frame);
        // Replies are bound to this connection's first request session.
        opener.bind(salt);
        opener.require_rekey_after(SealerLimits::default().soft);
        if publishes.is_some() {
            opener.also_accept(Kind::Publish);
        }
        let inbound = Inbound {
            publishes,
            tracing: cfg.telemetry.is_some(),
        };
        let waiting = Arc::new(Waiting::default());
        tokio::spawn(waiting.clone().sweep());
        tokio::spawn(read_loop(
            reader,
            peer,
            opener,
            waiting.clone(),
            outbox.clone(),
            inbound,
        ));
        Ok(Connection {
            waiting,
            outbox,
            principal,
            peer,
            peer_attrs: cfg.telemetry.as_ref().map(|t| t.server_peer(peer)),
        })
    }

    /// Whether the connection has ended (its read task finished). A call
    /// that finds the outbox closed first waits for the read task (see
    /// `Client::call_inner`), so a retry never goes down a dead connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.waiting.is_closed()
    }
}

/// Where a minion's connection delivers publishes.
struct Inbound {
    publishes: Option<mpsc::Sender<Published>>,
    tracing: bool,
}

impl Inbound {
    async fn deliver(
        &self,
        frame: bytes::Bytes,
        load: std::ops::Range<usize>,
    ) -> Result<(), WireError> {
        let published = decode_published(frame, load, self.tracing)?;
        if let Some(tx) = &self.publishes {
            // Waits while the queue is full: the connection pushes back.
            if tx.send(published).await.is_err() {
                tracing::debug!("publish arrived after its receiver was dropped");
            }
        }
        Ok(())
    }
}

async fn read_loop(
    mut reader: impl FrameRecv,
    peer: SocketAddr,
    mut opener: Opener,
    waiting: Arc<Waiting>,
    outbox: Arc<Outbox>,
    inbound: Inbound,
) {
    let reason = loop {
        let mut frame = match reader.recv().await {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => {
                tracing::debug!("client read: {e}");
                break None;
            }
        };
        let opened = match opener.open(&mut frame, unix_ms()) {
            Ok(o) => o,
            // The server is shutting down, and every reply it sent came
            // before this: a clean close (calls still waiting were not run).
            Err(WireError::PeerAlert(code)) if code == AlertCode::GoingAway as u8 => break None,
            Err(e) => break Some(e),
        };
        let frame = frame.freeze();
        if opened.header.kind == Kind::Publish {
            match inbound.deliver(frame, opened.load).await {
                Ok(()) => continue,
                Err(e) => break Some(e),
            }
        }
        let plain = frame.slice(opened.load);
        let reply = match load::decode::<ReplyLoad>(&plain)
            .and_then(|r| Ok((r.id, ReplyStatus::from_u8(r.status)?, r.body)))
        {
            Ok((id, status, body)) => (id, status, plain.slice_ref(body)),
            Err(e) => break Some(e),
        };
        waiting.answer(reply.0, Ok((reply.1, reply.2)));
    };
    if let Some(e) = &reason {
        // Every pending call returns this error; log it only at debug.
        tracing::debug!("closing connection to {peer}: {e}");
    }
    // The reason first: a caller that sees the outbox closed must find why.
    waiting.close(reason);
    outbox.close();
    opener.close(unix_ms());
}
