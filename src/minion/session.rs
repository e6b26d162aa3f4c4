//! One registration with the master, from `hello` until the connection is
//! lost: receive jobs, run each, return its result.
use super::Minion;
use crate::channel::{Client, HandlerError, PeerLink, Published, Request, Subscription};
use crate::error::Error;
use crate::job::{self, Hello, KeyAck, MinionResult, PublishKey, Ready, Return, Welcome};
use crate::keys::Key;
use crate::telemetry::Outcome;
use crate::transport::Peer;
use crate::wire::SessionRegistry;
use serde_bytes::ByteBuf;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

/// How long a ZeroMQ minion waits for its probe after registering.
const PROBE_WAIT: Duration = Duration::from_secs(30);
/// At shutdown, once the grace period has ended: how long jobs stopped
/// then get to send their failed returns before they are dropped.
const HALT_WAIT: Duration = Duration::from_secs(1);

/// Registers and serves jobs until the master is lost (`Ok`) or
/// registration fails (`Err`).
pub(super) async fn serve(
    me: Arc<Minion>,
    registry: Arc<SessionRegistry>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let registering = register(&me, registry);
    let (client, mut pushed, mut sub, master) = tokio::select! {
        r = registering => r?,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    tracing::info!("minion {} registered with {}", me.id, me.master);
    me.ready.send_replace(true);
    let permits = Arc::new(Semaphore::new(me.opts.max_jobs.max(1)));
    let mut running = JoinSet::new();
    // Set when the shutdown grace period ends: running jobs stop.
    let (halt, halted) = watch::channel(false);
    loop {
        let published = tokio::select! {
            // Once shutdown began, no job is taken here (it is answered by
            // the drain below instead).
            biased;
            _ = stop.wait_for(|s| *s) => break,
            p = next(&mut pushed, sub.as_mut()) => p,
            _ = client.disconnected() => Err(Error::ConnectionClosed),
            Some(_) = running.join_next(), if !running.is_empty() => continue,
        };
        let Ok((published, pushed_down)) = published else {
            // The master is gone: register again (running jobs' returns
            // would fail; they end with the session).
            return Ok(());
        };
        if published.method == job::PROBE {
            continue;
        }
        if published.method == job::PUBLISH_KEY {
            // Only ever down the minion's own authenticated connection.
            if pushed_down {
                install_publish_key(&me, &client, sub.as_mut(), &published).await;
            }
            continue;
        }
        if published.to != "*" && published.to != me.id {
            tracing::warn!(
                "job {} addressed to {} reached {}; dropped",
                published.jid,
                published.to,
                me.id
            );
            continue;
        }
        let (me, client, permits) = (me.clone(), client.clone(), permits.clone());
        let halted = halted.clone();
        running.spawn(async move {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            run_job(&me, &client, master, published, Some(halted)).await;
        });
    }
    // Shutting down: no new jobs run. Running jobs finish and return, up to
    // the grace period. A job that arrives meanwhile is not run but
    // answered at once with a failed return, so its publisher learns why
    // at once instead of waiting out its timeout.
    let drain = async {
        let mut reading = true;
        while !running.is_empty() {
            tokio::select! {
                Some(_) = running.join_next() => {}
                p = next(&mut pushed, sub.as_mut()), if reading => match p {
                    Ok((p, _)) if is_job_for(&me, &p) => {
                        let (me, client) = (me.clone(), client.clone());
                        running.spawn(async move { run_job(&me, &client, master, p, None).await });
                    }
                    Ok(_) => {}
                    Err(_) => reading = false,
                },
            }
        }
    };
    if tokio::time::timeout(me.opts.grace, drain).await.is_err() {
        // The grace period is over: the jobs still running stop and return
        // a failure; any that cannot return in time are dropped.
        tracing::warn!(
            "minion {}: jobs still running at the end of the shutdown grace period were stopped",
            me.id
        );
        halt.send_replace(true);
        let returned = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(HALT_WAIT, returned).await.is_err() {
            running.shutdown().await;
        }
    }
    Ok(())
}

/// Whether `p` is a job this minion should answer (not a probe, a key
/// update, or a job addressed to another minion).
fn is_job_for(me: &Minion, p: &Published) -> bool {
    p.method != job::PROBE && p.method != job::PUBLISH_KEY && (p.to == "*" || p.to == me.id)
}

type Registered = (
    Client,
    mpsc::Receiver<Published>,
    Option<Subscription>,
    SocketAddr,
);

/// Connects, says hello and, on ZeroMQ, subscribes and confirms the probe.
async fn register(me: &Minion, registry: Arc<SessionRegistry>) -> Result<Registered, Error> {
    let (client, pushed) =
        Client::connect_with_publishes(&me.master, me.cfg.clone(), me.opts.queue).await?;
    let master = client.peer_addr().ok_or(Error::ConnectionClosed)?;
    let welcome: Welcome = client
        .call_value(job::HELLO, &Hello { id: me.id.clone() })
        .await?;
    let sub = match (welcome.publish_port, welcome.probe) {
        (Some(port), Some(token)) => {
            let addr = SocketAddr::new(master.ip(), port);
            // Identity mode: the publish key came over this authenticated
            // connection, and every PUB message must carry the master's
            // signature. Shared-key mode: the shared key, unsigned.
            let key = match &welcome.publish_key {
                Some(k) => Key::from_bytes(key_bytes(k)?),
                None => me.cfg.key.clone(),
            };
            let signer = welcome
                .signing_key
                .as_ref()
                .map(|k| key_bytes(k))
                .transpose()?;
            let mut sub =
                Subscription::connect(addr, &me.id, &me.cfg, key, signer, registry).await?;
            await_probe(&mut sub, &token).await?;
            let ready = Ready {
                id: me.id.clone(),
                token,
            };
            client.call_value::<_, ()>(job::READY, &ready).await?;
            Some(sub)
        }
        _ => None,
    };
    Ok((client, pushed, sub, master))
}

/// The next job, from the connection (TCP, WebSocket) or the subscription.
/// The next job and whether it came down the connection (rather than on
/// the subscription). A ZeroMQ minion takes both: jobs come down its
/// connection while it does not hold the current publish key.
async fn next(
    pushed: &mut mpsc::Receiver<Published>,
    sub: Option<&mut Subscription>,
) -> Result<(Published, bool), Error> {
    let down = async { pushed.recv().await.ok_or(Error::ConnectionClosed) };
    match sub {
        Some(sub) => tokio::select! {
            p = sub.next() => Ok((p?, false)),
            p = down => Ok((p?, true)),
        },
        None => Ok((down.await?, true)),
    }
}

fn key_bytes(b: &[u8]) -> Result<[u8; 32], Error> {
    b.try_into()
        .map_err(|_| Error::Publish("the master sent a key that is not 32 bytes".into()))
}

/// A rotated publish key, pushed down the connection: install it, then
/// tell the master (which sends jobs down the connection until then).
async fn install_publish_key(
    me: &Minion,
    client: &Client,
    sub: Option<&mut Subscription>,
    p: &Published,
) {
    let Some(sub) = sub else { return };
    let update: PublishKey = match rmp_serde::from_slice(&p.body) {
        Ok(u) => u,
        Err(_) => {
            tracing::warn!("minion {}: malformed publish key from the master", me.id);
            return;
        }
    };
    let Ok(key) = key_bytes(&update.key) else {
        tracing::warn!("minion {}: malformed publish key from the master", me.id);
        return;
    };
    sub.set_key(Key::from_bytes(key));
    let ack = KeyAck {
        id: me.id.clone(),
        epoch: update.epoch,
    };
    if let Err(e) = client.call_value::<_, ()>(job::KEY_ACK, &ack).await {
        tracing::warn!("minion {}: publish key not acknowledged: {e}", me.id);
    }
}

async fn await_probe(sub: &mut Subscription, token: &str) -> Result<(), Error> {
    let wait = async {
        loop {
            let p = sub.next().await?;
            if p.method == job::PROBE && p.body == token.as_bytes() {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(PROBE_WAIT, wait).await {
        Ok(r) => r,
        Err(_) => Err(Error::Publish(
            "no probe arrived on the master's publish socket".into(),
        )),
    }
}

/// Runs one job inside its CONSUMER span and returns its result; the
/// return's CLIENT span is a child of the CONSUMER span. With `halt`, the
/// job stops (and returns a failure) once it is set; without, the minion
/// is shutting down and the job is not run: it returns a failure at once.
async fn run_job(
    me: &Minion,
    client: &Client,
    master: SocketAddr,
    p: Published,
    halt: Option<watch::Receiver<bool>>,
) {
    let span = me
        .cfg
        .telemetry
        .as_ref()
        .map(|t| t.consumer_span(&p.method, &p.jid, &me.id, &p.context, me.opts.consumer));
    let work = async {
        let result = match halt {
            None => Err(HandlerError::new(format!(
                "minion {} is shutting down: the job was not run",
                me.id
            ))),
            Some(mut halt) => tokio::select! {
                r = run_handler(me, master, &p) => r,
                // Also if the session ended (the sender is gone).
                _ = halt.wait_for(|h| *h) => Err(HandlerError::new(format!(
                    "minion {} shut down before the job finished",
                    me.id
                ))),
            },
        };
        let ret = Return {
            jid: p.jid.clone(),
            id: me.id.clone(),
            result: match &result {
                Ok(body) => MinionResult {
                    ok: true,
                    body: ByteBuf::from(body.to_vec()),
                },
                Err(e) => MinionResult {
                    ok: false,
                    body: ByteBuf::from(e.message.clone().into_bytes()),
                },
            },
        };
        let left = p.deadline.map_or(me.cfg.timeout, |d| {
            d.saturating_duration_since(std::time::Instant::now())
        });
        let body = rmp_serde::to_vec(&ret).map_err(|e| Error::Body(e.to_string()));
        let sent = match body {
            Ok(body) => client
                .call_with_timeout(job::RETURN, body.into(), left.max(Duration::from_millis(1)))
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        (result.err(), sent)
    };
    let (failed, sent) = match &span {
        Some(span) => span.run(work).await,
        None => work.await,
    };
    if let Err(e) = &sent {
        tracing::warn!("minion {}: return of job {} lost: {e}", me.id, p.jid);
    }
    if let Some(span) = span {
        span.end(match (&failed, &sent) {
            (Some(e), _) => Outcome::Failed {
                kind: "handler_error",
                message: &e.message,
            },
            (None, Err(_)) => Outcome::Failed {
                kind: "return_lost",
                message: "the return could not be sent",
            },
            (None, Ok(())) => Outcome::Ok,
        });
    }
}

/// Runs job `p`'s handler to the job's deadline.
async fn run_handler(
    me: &Minion,
    master: SocketAddr,
    p: &Published,
) -> Result<bytes::Bytes, HandlerError> {
    let Some(route) = me.router.get(&p.method) else {
        return Err(HandlerError::new(format!(
            "no such method on minion {}: {}",
            me.id, p.method
        )));
    };
    let request = Request {
        method: route.name,
        body: p.body.clone(),
        deadline: p.deadline,
        peer: Peer::Addr(master),
        link: PeerLink::default(),
        principal: None,
    };
    crate::channel::run_handler((route.handler)(request), p.deadline)
        .await
        .map_err(|(_, e)| e)
}
