//! Men in the middle for the attack suite, on any transport (TCP,
//! WebSocket, ZeroMQ): a frame relay that forwards each frame or swaps it
//! for others (duplicating, replaying), and a handshake-terminating relay
//! that answers a minion's handshake with its own key, and a relay of the
//! master's ZeroMQ PUB messages. They count what they see in watch
//! channels, so tests wait on events, never on time.
use super::attack::guard;
use super::raw::{Raw, RAW_MAX};
use bytes::{Bytes, BytesMut};
use sealrpc::channel::parse_url;
use sealrpc::pki::KeyPair;
use sealrpc::transport::{self, AnyRecv, AnySend, Endpoint, FrameRecv, FrameSend, Listener};
use sealrpc::wire::handshake::{Initiator, Responder};
use sealrpc_zmq::{ZmqConfig, ZmqPublisher, ZmqSubscriber};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Which way a frame travels through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client (minion) to server (master).
    Up,
    /// Server to client.
    Down,
}

/// What the relay does with a frame.
pub enum Action {
    Forward,
    /// Sends these frames instead (in order).
    Replace(Vec<Bytes>),
}

/// Decides per frame: `(connection number from 0, direction, frame)`.
pub type Hook = Arc<dyn Fn(usize, Dir, &[u8]) -> Action + Send + Sync>;

/// Forwards every frame unchanged.
pub fn forward_all() -> Hook {
    Arc::new(|_, _, _| Action::Forward)
}

/// Replaces the next reply going down any connection with garbage, once
/// `armed` is set (and only once).
pub fn garbage_for_next_reply(armed: Arc<AtomicBool>) -> Hook {
    Arc::new(move |_, dir, frame| {
        let reply = frame.len() >= 56 && frame[..4] == [0x53, 0x52, 0x01, 0x02];
        if dir == Dir::Down && reply && armed.swap(false, Ordering::SeqCst) {
            return Action::Replace(vec![Bytes::from_static(b"garbage, not an envelope")]);
        }
        Action::Forward
    })
}

/// A listener on `host` (a free port) bound like `upstream` (same scheme and path).
async fn bind_like(host: &str, upstream: &str) -> (Listener, Endpoint) {
    let up = parse_url(upstream).expect("upstream url");
    let addr = format!("{host}:0");
    let local = match &up {
        Endpoint::Tcp(_) => Endpoint::Tcp(addr),
        Endpoint::Ws { path, .. } => Endpoint::Ws {
            addr,
            path: path.clone(),
        },
        Endpoint::Zmq(_) => Endpoint::Zmq(addr),
    };
    let listener = Listener::bind(&local, RAW_MAX).await.expect("relay bind");
    (listener, up)
}

/// Accepts connections until dropped, handing each to `serve`.
fn accept_loop<F, Fut>(listener: Listener, serve: F) -> JoinHandle<()>
where
    F: Fn(usize, AnyRecv, AnySend) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut conns = JoinSet::new();
        let mut n = 0;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((r, w, _)) = accepted {
                        conns.spawn(serve(n, r, w));
                        n += 1;
                    }
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    })
}

/// A frame relay in front of a server.
pub struct Relay {
    pub url: String,
    accepted: watch::Receiver<usize>,
    ended: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    pub async fn start(upstream: &str, hook: Hook) -> Relay {
        Relay::start_on("127.0.0.1", upstream, hook).await
    }

    /// A relay listening on `host` (another loopback address, say).
    pub async fn start_on(host: &str, upstream: &str, hook: Hook) -> Relay {
        let (listener, up) = bind_like(host, upstream).await;
        let url = listener.local_url().expect("relay url");
        let accepted_tx = Arc::new(watch::Sender::new(0usize));
        let ended_tx = Arc::new(watch::Sender::new(0usize));
        let (accepted, ended) = (accepted_tx.subscribe(), ended_tx.subscribe());
        let task = accept_loop(listener, move |n, r, w| {
            accepted_tx.send_modify(|c| *c += 1);
            let (up, hook, ended_tx) = (up.clone(), hook.clone(), ended_tx.clone());
            async move {
                relay_one(n, r, w, &up, hook).await;
                ended_tx.send_modify(|c| *c += 1);
            }
        });
        Relay {
            url,
            accepted,
            ended,
            task,
        }
    }

    /// Completes once `n` connections were accepted.
    pub async fn accepted(&self, n: usize) {
        let mut rx = self.accepted.clone();
        guard("relay connections", rx.wait_for(|c| *c >= n))
            .await
            .expect("relay");
    }

    /// Completes once `n` relayed connections have ended.
    pub async fn ended(&self, n: usize) {
        let mut rx = self.ended.clone();
        guard("relayed connections ending", rx.wait_for(|c| *c >= n))
            .await
            .expect("relay");
    }
}

async fn relay_one(n: usize, r: AnyRecv, w: AnySend, up: &Endpoint, hook: Hook) {
    let Ok((ur, uw, _)) = transport::connect(up, RAW_MAX).await else {
        w.close().await;
        return;
    };
    // When one direction ends, the other is dropped (closing its sockets).
    tokio::select! {
        _ = pump(n, Dir::Up, r, uw, hook.clone()) => {}
        _ = pump(n, Dir::Down, ur, w, hook) => {}
    }
}

async fn pump(n: usize, dir: Dir, mut r: AnyRecv, mut w: AnySend, hook: Hook) {
    while let Ok(Some(frame)) = r.recv().await {
        let out = match hook(n, dir, &frame) {
            Action::Forward => vec![frame.freeze()],
            Action::Replace(frames) => frames,
        };
        let mut batch = BytesMut::new();
        for f in out {
            transport::push_frame(&mut batch, RAW_MAX, |b| {
                b.extend_from_slice(&f);
                Ok(())
            })
            .expect("frame");
        }
        if w.send_batch(&mut batch).await.is_err() {
            return;
        }
    }
    w.close().await;
}

/// An active man in the middle: it answers each minion's handshake with
/// its own key (as Noise responder) after completing its own handshake with
/// the real master (as initiator), and counts what the minion does next.
pub struct Mitm {
    pub url: String,
    /// Handshakes the minion abandoned after frame 2 (it refused our key).
    refused: watch::Receiver<usize>,
    /// Frame 3s the minion sent us (its key and id): must stay 0.
    completed: watch::Receiver<usize>,
    /// Handshakes we completed with the real master.
    upstream: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mitm {
    pub async fn start(master_url: &str, keys: KeyPair) -> Mitm {
        let (listener, _) = bind_like("127.0.0.1", master_url).await;
        let url = listener.local_url().expect("mitm url");
        let (refused_tx, completed_tx, upstream_tx) = (
            Arc::new(watch::Sender::new(0usize)),
            Arc::new(watch::Sender::new(0usize)),
            Arc::new(watch::Sender::new(0usize)),
        );
        let (refused, completed, upstream) = (
            refused_tx.subscribe(),
            completed_tx.subscribe(),
            upstream_tx.subscribe(),
        );
        let (keys, master_url) = (Arc::new(keys), master_url.to_owned());
        let task = accept_loop(listener, move |_, mut r, mut w| {
            let (keys, master_url) = (keys.clone(), master_url.clone());
            let (refused_tx, completed_tx, upstream_tx) = (
                refused_tx.clone(),
                completed_tx.clone(),
                upstream_tx.clone(),
            );
            async move {
                let Ok(Some(f1)) = r.recv().await else { return };
                // Our own handshake with the real master.
                let mut up = Raw::connect(&master_url).await;
                let (init, uf1) = Initiator::start(keys.secret_bytes()).expect("start");
                up.send(&uf1).await;
                if let Some(uf2) = up.recv().await {
                    if let Ok((uf3, _)) = init.finish(&uf2, b"relay") {
                        up.send(&uf3).await;
                        upstream_tx.send_modify(|c| *c += 1);
                    }
                }
                // Our own key to the minion.
                let Ok((_resp, f2)) = Responder::respond(keys.secret_bytes(), &f1, &[]) else {
                    return;
                };
                let mut batch = BytesMut::new();
                transport::push_frame(&mut batch, RAW_MAX, |b| {
                    b.extend_from_slice(&f2);
                    Ok(())
                })
                .expect("frame");
                if w.send_batch(&mut batch).await.is_err() {
                    return;
                }
                match r.recv().await {
                    Ok(Some(_frame3)) => completed_tx.send_modify(|c| *c += 1),
                    _ => refused_tx.send_modify(|c| *c += 1),
                }
            }
        });
        Mitm {
            url,
            refused,
            completed,
            upstream,
            task,
        }
    }

    /// Completes once the minion has refused `n` of our handshakes.
    pub async fn refused(&self, n: usize) {
        let mut rx = self.refused.clone();
        guard("the minion refusing the relay", rx.wait_for(|c| *c >= n))
            .await
            .expect("mitm");
    }

    pub fn completed(&self) -> usize {
        *self.completed.borrow()
    }

    pub fn upstream(&self) -> usize {
        *self.upstream.borrow()
    }
}

/// A relay between the master's ZeroMQ PUB socket and a subscriber: each
/// message on `topics` is published on `copies` times (and recorded) from
/// a PUB socket bound at `bind`; recorded messages can be published again.
pub struct PubRelay {
    pub addr: std::net::SocketAddr,
    publisher: Arc<ZmqPublisher>,
    captured: Arc<Mutex<Vec<(Bytes, Bytes)>>>,
    task: JoinHandle<()>,
}

impl Drop for PubRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PubRelay {
    pub async fn start(
        upstream: std::net::SocketAddr,
        topics: &[&str],
        copies: usize,
        bind: std::net::SocketAddr,
    ) -> PubRelay {
        let endpoint = format!("tcp://{upstream}");
        let mut sub = ZmqSubscriber::connect(&endpoint, topics, ZmqConfig::default())
            .await
            .expect("subscribe to the master");
        let publisher = ZmqPublisher::bind(&format!("tcp://{bind}"), ZmqConfig::default())
            .await
            .expect("relay PUB");
        let addr = publisher.local_endpoint()["tcp://".len()..]
            .parse()
            .expect("addr");
        let publisher = Arc::new(publisher);
        let captured: Arc<Mutex<Vec<(Bytes, Bytes)>>> = Arc::default();
        let (out, seen) = (publisher.clone(), captured.clone());
        let task = tokio::spawn(async move {
            while let Ok((topic, frame)) = sub.recv().await {
                let frame = frame.freeze();
                seen.lock()
                    .expect("lock")
                    .push((topic.clone(), frame.clone()));
                for _ in 0..copies {
                    let _ = out.publish(&topic, frame.clone()).await;
                }
            }
        });
        PubRelay {
            addr,
            publisher,
            captured,
            task,
        }
    }

    /// Every message relayed so far, `(topic, frame)`, in order.
    pub fn captured(&self) -> Vec<(Bytes, Bytes)> {
        self.captured.lock().expect("lock").clone()
    }

    /// Publishes `frame` on `topic` again (after what was relayed so far).
    pub async fn inject(&self, topic: &[u8], frame: Bytes) {
        self.publisher.publish(topic, frame).await.expect("inject");
    }
}
