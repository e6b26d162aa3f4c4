//! Node identities: the Noise XX handshake that runs on a connection before
//! any envelope (see `wire::handshake`), and what it proves about the peer.
//! Each side's verifier decides whether the authenticated peer may go on;
//! the per-direction keys the handshake yields become the connection's
//! envelope keys (forward secrecy: they die with the connection).
use crate::error::Error;
use crate::keys::{Key, Keyring};
use crate::pki::{KeyPair, PublicKey};
use crate::transport::{push_frame, FrameRecv, FrameSend};
use crate::wire::handshake::{Completed, Initiator, Responder};
use crate::wire::header::{alert_frame, AlertCode};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;

/// What a handshake proved: the peer's long-term key and what it said in
/// the handshake (a minion's id), both authenticated.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub key: PublicKey,
    pub payload: Vec<u8>,
}

/// What a peer may do, as its verifier decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// An accepted minion.
    Minion,
    /// An identity on the master's publisher list (may publish).
    Publisher,
    /// The master (as a minion or the CLI sees it).
    Master,
}

/// The authenticated peer of a connection, as handlers see it.
#[derive(Clone, Debug)]
pub struct Principal {
    pub key: PublicKey,
    /// A minion's id, bound to this connection by the handshake.
    pub id: Option<String>,
    pub role: PeerRole,
    /// Whether this peer's trace context may be a parent; when false its
    /// SERVER spans start a new trace linked to the caller's context.
    pub trusted_context: bool,
}

/// A refusal: the peer authenticated but may not go on.
#[derive(Clone, Debug)]
pub struct Refusal(pub String);

/// Decides what an authenticated peer may do.
pub type Verifier = Arc<dyn Fn(&Authenticated) -> Result<Principal, Refusal> + Send + Sync>;

/// A node's long-term identity and how it judges its peers.
#[derive(Clone)]
pub struct Identity {
    pub(crate) keys: Arc<KeyPair>,
    /// Sent inside the handshake, encrypted (a minion's id; empty otherwise).
    pub(crate) payload: Vec<u8>,
    pub(crate) verify: Verifier,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("key", &self.keys.public())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity with `keys`, telling peers `payload`, judging them with `verify`.
    pub fn new(keys: Arc<KeyPair>, payload: Vec<u8>, verify: Verifier) -> Identity {
        Identity {
            keys,
            payload,
            verify,
        }
    }

    /// This node's public key.
    pub fn public(&self) -> PublicKey {
        self.keys.public()
    }
}

/// The keys one connection seals and opens with after a handshake.
pub(crate) struct SessionKeys {
    pub(crate) send: Key,
    pub(crate) recv: Arc<Keyring>,
    pub(crate) peer: Principal,
}

impl SessionKeys {
    fn new(done: Completed, peer: Principal) -> SessionKeys {
        SessionKeys {
            send: Key::from_bytes(*done.send_key),
            recv: Arc::new(Keyring::single(Key::from_bytes(*done.recv_key))),
            peer,
        }
    }
}

async fn send_frame(w: &mut impl FrameSend, frame: &[u8], max: usize) -> Result<(), Error> {
    let mut batch = BytesMut::with_capacity(frame.len() + 4);
    push_frame(&mut batch, max, |b| {
        b.extend_from_slice(frame);
        Ok(())
    })?;
    Ok(w.send_batch(&mut batch).await?)
}

async fn recv_frame(r: &mut impl FrameRecv) -> Result<BytesMut, Error> {
    r.recv().await?.ok_or(Error::ConnectionClosed)
}

fn judge(identity: &Identity, done: &Completed) -> Result<Principal, Error> {
    let peer = Authenticated {
        key: PublicKey(done.remote_static),
        payload: done.payload.clone(),
    };
    (identity.verify)(&peer).map_err(|Refusal(why)| Error::NotAuthorized(why))
}

/// `run`, or `HandshakeTimeout` when it takes longer than `timeout`.
async fn bounded<T>(
    timeout: Duration,
    run: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(Error::HandshakeTimeout(timeout)))
}

/// The connecting side: runs the handshake within `timeout` and checks the
/// server (its pinned key) before any envelope is sent.
pub(crate) async fn initiate(
    r: &mut impl FrameRecv,
    w: &mut impl FrameSend,
    identity: &Identity,
    max: usize,
    timeout: Duration,
) -> Result<SessionKeys, Error> {
    let run = async {
        let (state, frame1) = Initiator::start(identity.keys.secret_bytes())?;
        send_frame(w, &frame1, max).await?;
        let frame2 = recv_frame(r).await?;
        let (frame3, done) = state.finish(&frame2, &identity.payload)?;
        // The server is judged before it learns anything more than frame 3.
        let peer = judge(identity, &done)?;
        send_frame(w, &frame3, max).await?;
        Ok(SessionKeys::new(done, peer))
    };
    bounded(timeout, run).await
}

/// The accepting side: runs the handshake within `timeout` and judges the
/// client. A refused client is sent a `NotAuthorized` alert.
pub(crate) async fn respond(
    r: &mut impl FrameRecv,
    w: &mut impl FrameSend,
    identity: &Identity,
    max: usize,
    timeout: Duration,
) -> Result<SessionKeys, Error> {
    let run = async {
        let frame1 = recv_frame(r).await?;
        let (state, frame2) = Responder::respond(identity.keys.secret_bytes(), &frame1, &[])?;
        send_frame(w, &frame2, max).await?;
        let frame3 = recv_frame(r).await?;
        let done = state.finish(&frame3)?;
        let peer = judge(identity, &done)?;
        Ok(SessionKeys::new(done, peer))
    };
    let result = bounded(timeout, run).await;
    if result.is_err() {
        let _ = send_frame(w, &alert_frame(AlertCode::NotAuthorized), max).await;
    }
    result
}
