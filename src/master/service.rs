//! The methods a master serves for the minion protocol: `sealrpc.hello`,
//! `sealrpc.ready`, `sealrpc.return` and `sealrpc.publish`.
use super::{security, Hub};
use crate::channel::{HandlerError, Job, PeerLink, Request, Router};
use crate::job::{self, Hello, KeyAck, PublishRequest, Ready, Return, Welcome};
use crate::transport::Peer;
use bytes::Bytes;
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::time::Duration;

/// When a ZeroMQ minion is sent its probe: first after `PROBE_FIRST` (it
/// subscribes only once it has the welcome), then at intervals doubling up
/// to `PROBE_MAX`, for `PROBE_FOR` in all. Every probe costs zeromq's PUB
/// socket a pass over all its subscribers, so thousands of minions
/// registering at once must not probe at a fixed high rate.
const PROBE_FIRST: Duration = Duration::from_millis(10);
const PROBE_MAX: Duration = Duration::from_secs(1);
const PROBE_FOR: Duration = Duration::from_secs(30);

fn encode<T: serde::Serialize>(v: &T) -> Result<Bytes, HandlerError> {
    rmp_serde::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| HandlerError::new(format!("cannot encode reply: {e}")))
}

fn refused(e: crate::Error) -> HandlerError {
    HandlerError::new(e.to_string())
}

/// Adds the minion protocol to `router`.
pub(crate) fn register(router: Router, hub: Arc<Hub>) -> Router {
    let (h1, h2, h3, h4, h5) = (hub.clone(), hub.clone(), hub.clone(), hub.clone(), hub);
    router
        .route(job::HELLO, move |req| hello(h1.clone(), req))
        .route(job::READY, move |req| ready(h2.clone(), req))
        .route(job::RETURN, move |req| returned(h3.clone(), req))
        .route(job::PUBLISH, move |req| publish(h4.clone(), req))
        .route(job::KEY_ACK, move |req| key_ack(h5.clone(), req))
        // A job published before shutdown still collects its returns while
        // the master drains (every other request is refused then).
        .serve_while_draining(job::RETURN)
}

async fn hello(hub: Arc<Hub>, req: Request) -> Result<Bytes, HandlerError> {
    let hello: Hello = req.decode()?;
    job::validate_id(&hello.id).map_err(refused)?;
    // The id is the one the handshake bound to this connection.
    security::bound_id(&req, &hello.id)?;
    let key = req.principal.as_ref().map(|p| p.key);
    // A ZeroMQ minion (a ROUTER identity) gets its jobs on the PUB socket.
    let zmq = matches!(req.peer, Peer::Identity(_));
    let welcome = match (&hub.pub_sender, zmq) {
        (Some(pubs), true) => {
            let token = hex::encode(crate::channel::random_token());
            let (epoch, publish_key) = hub.current_publish_key();
            hub.registry
                .hello(&hello.id, req.link.clone(), Some(token.clone()), key, epoch)
                .map_err(refused)?;
            let port = pubs.local_addr().map_err(refused)?.port();
            pubs.new_session();
            let (id, link) = (hello.id.clone(), req.link.clone());
            tokio::spawn(probe(hub.clone(), id, link, token.clone()));
            let identity = req.principal.is_some();
            Welcome {
                publish_port: Some(port),
                probe: Some(token),
                publish_key: identity.then(|| ByteBuf::from(publish_key.bytes().to_vec())),
                epoch,
                signing_key: pubs.verifying_key().map(|k| ByteBuf::from(k.to_vec())),
            }
        }
        (None, true) => return Err(HandlerError::new("this master has no publish socket")),
        (_, false) => {
            hub.registry
                .hello(&hello.id, req.link.clone(), None, key, 0)
                .map_err(refused)?;
            Welcome {
                publish_port: None,
                probe: None,
                publish_key: None,
                epoch: 0,
                signing_key: None,
            }
        }
    };
    tracing::info!("minion {} registered from {}", hello.id, req.peer);
    encode(&welcome)
}

/// Publishes the probe on the minion's topic until it confirms (its SUB
/// socket may take a moment to subscribe: ZeroMQ's "slow joiner").
async fn probe(hub: Arc<Hub>, id: String, link: PeerLink, token: String) {
    let Some(pubs) = &hub.pub_sender else { return };
    let job = Job::new(
        String::new(),
        job::PROBE.to_owned(),
        Bytes::from(token.clone()),
        Duration::ZERO,
        None,
    );
    let until = tokio::time::Instant::now() + PROBE_FOR;
    let mut wait = PROBE_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        let pending = hub.registry.pending_probe(&id, &link).as_deref() == Some(token.as_str());
        if !pending || tokio::time::Instant::now() >= until {
            return;
        }
        if let Err(e) = pubs.send(&job, &id).await {
            tracing::debug!("probe to {id}: {e}");
        }
        wait = (wait * 2).min(PROBE_MAX);
    }
}

async fn ready(hub: Arc<Hub>, req: Request) -> Result<Bytes, HandlerError> {
    let ready: Ready = req.decode()?;
    security::bound_id(&req, &ready.id)?;
    hub.registry
        .confirm(&ready.id, &req.link, &ready.token)
        .map_err(refused)?;
    tracing::info!("minion {} subscribed", ready.id);
    encode(&())
}

async fn returned(hub: Arc<Hub>, req: Request) -> Result<Bytes, HandlerError> {
    let ret: Return = req.decode()?;
    security::bound_id(&req, &ret.id)?;
    // The id is bound to the connection it registered over.
    if !hub.registry.registered_on(&ret.id, &req.link) {
        return Err(HandlerError::new(format!(
            "minion {} is not registered on this connection",
            ret.id
        )));
    }
    if !hub.jobs.record(&ret.jid, &ret.id, ret.result) {
        return Err(HandlerError::new(format!(
            "job {} is not waiting for a return from {}",
            ret.jid, ret.id
        )));
    }
    encode(&())
}

async fn key_ack(hub: Arc<Hub>, req: Request) -> Result<Bytes, HandlerError> {
    let ack: KeyAck = req.decode()?;
    security::bound_id(&req, &ack.id)?;
    if !hub.registry.holds_epoch(&ack.id, &req.link, ack.epoch) {
        return Err(HandlerError::new(format!(
            "minion {} is not registered on this connection",
            ack.id
        )));
    }
    encode(&())
}

async fn publish(hub: Arc<Hub>, req: Request) -> Result<Bytes, HandlerError> {
    let p: PublishRequest = req.decode()?;
    let timeout = Duration::from_millis(p.timeout_ms);
    let report = hub
        .publish(
            &p.target,
            &p.method,
            Bytes::from(p.body.into_vec()),
            timeout,
        )
        .await
        .map_err(refused)?;
    encode(&report)
}
