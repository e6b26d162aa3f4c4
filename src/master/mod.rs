//! A master: a channel server that also knows its minions. It serves the
//! registration and return methods, publishes jobs to targets (down each
//! minion's connection on TCP and WebSocket, by topic on ZeroMQ) and
//! collects every return up to a timeout, reporting who did not answer.
mod jobs;
mod publish;
mod registry;
mod rotation;
mod security;
mod service;

pub use security::MasterPki;

use crate::channel::{ChannelConfig, PubSender, Router, Server};
use crate::error::Error;
use crate::job::JobReport;
use crate::keys::Key;
use crate::telemetry::Telemetry;
use crate::transport::Endpoint;
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// What the router's built-in methods and [`MasterHandle`] share.
pub(crate) struct Hub {
    registry: registry::Registry,
    jobs: jobs::Jobs,
    /// The ZeroMQ PUB socket, when the master listens on ZeroMQ.
    pub_sender: Option<PubSender>,
    telemetry: Option<Telemetry>,
    last_jid: AtomicU64,
    /// Identity mode: the minion key registry and the publish signer.
    security: Option<security::Security>,
    /// The key ZeroMQ jobs are sealed under, and its epoch (bumped when a
    /// minion is cut off). With a shared key it is that key, never rotated.
    publish_key: std::sync::Mutex<(u32, Key)>,
}

/// How a master binds and whom it trusts.
#[derive(Clone, Debug, Default)]
pub struct MasterOptions {
    /// Port of the ZeroMQ PUB socket (with a `zmq://` listener; same host).
    /// 0 picks a free port; minions learn it when they register.
    pub publish_port: u16,
    /// Node identities (Noise handshakes, minion key registry, publisher
    /// list); `None` = shared-key mode (`ChannelConfig::key`).
    pub pki: Option<MasterPki>,
}

/// A bound master, not yet running.
pub struct Master {
    server: Server,
    hub: Arc<Hub>,
}

/// Publishes jobs and lists minions, from inside the process. Cheap to clone.
#[derive(Clone)]
pub struct MasterHandle {
    hub: Arc<Hub>,
}

impl Master {
    /// Binds every URL. `router` holds the methods the master itself
    /// serves; the minion protocol (`sealrpc.*`) is added to it. With a
    /// `zmq://` URL, a PUB socket is bound on the same host (see
    /// [`MasterOptions`]). With `opts.pki`, every connection starts with a
    /// handshake and `cfg.identity` is set from the master's key pair.
    pub async fn bind<S: AsRef<str>>(
        urls: &[S],
        router: Router,
        mut cfg: ChannelConfig,
        opts: MasterOptions,
    ) -> Result<Master, Error> {
        let security = match &opts.pki {
            Some(pki) => {
                let (identity, security) = security::load(pki)?;
                cfg.identity = Some(identity);
                Some(security)
            }
            None => None,
        };
        // Identity mode: a random publish key, handed to accepted minions
        // over their authenticated connections and rotated on cut-offs.
        let publish_key = match security {
            Some(_) => Key::generate(),
            None => cfg.key.clone(),
        };
        let signer = security.as_ref().map(|s| s.signer.clone());
        let zmq_host = urls.iter().find_map(|u| match Endpoint::parse(u.as_ref()) {
            Some(Endpoint::Zmq(addr)) => addr.rsplit_once(':').map(|(h, _)| h.to_owned()),
            _ => None,
        });
        let pub_sender = match zmq_host {
            Some(host) => {
                let addr = format!("{host}:{}", opts.publish_port);
                // The PUB port is as exposed as the request ports: a peer
                // that never finishes its ZMTP handshake is dropped at the
                // same timeout as a stalled handshake there.
                let (max, timeout) = (cfg.max_frame, cfg.handshake_timeout);
                let key = publish_key.clone();
                Some(PubSender::bind_with(&addr, key, signer, max, timeout).await?)
            }
            None => None,
        };
        let hub = Arc::new(Hub {
            registry: registry::Registry::default(),
            jobs: jobs::Jobs::default(),
            pub_sender,
            telemetry: cfg.telemetry.clone(),
            last_jid: AtomicU64::new(0),
            security,
            publish_key: std::sync::Mutex::new((0, publish_key)),
        });
        let granted = hub.security.as_ref().map(|s| s.granted.clone());
        let router = security::guard(service::register(router, hub.clone()), granted);
        let server = Server::bind_all(urls, router, cfg).await?;
        Ok(Master { server, hub })
    }

    /// Every listener's URL, in the order bound.
    pub fn local_urls(&self) -> Result<Vec<String>, Error> {
        self.server.local_urls()
    }

    /// The ZeroMQ PUB socket's address, when there is one.
    pub fn publish_addr(&self) -> Option<std::net::SocketAddr> {
        self.hub.pub_sender.as_ref()?.local_addr().ok()
    }

    /// A handle to publish jobs from this process.
    pub fn handle(&self) -> MasterHandle {
        MasterHandle {
            hub: self.hub.clone(),
        }
    }

    /// How long in-flight requests may run on after shutdown (default 5 s).
    pub fn with_grace(mut self, grace: Duration) -> Master {
        self.server = self.server.with_grace(grace);
        self
    }

    /// Completes once the master has stopped accepting connections (see
    /// [`Server::stopped_accepting`]).
    pub fn stopped_accepting(&self) -> impl Future<Output = ()> + Send + 'static {
        self.server.stopped_accepting()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (see
    /// [`Server::run`]): it stops accepting, refuses new requests, and lets
    /// requests in flight finish within the grace period. Jobs being
    /// published still collect their returns then (`sealrpc.return` is
    /// served while draining), so a `publish` in flight completes with
    /// them; one whose returns do not arrive within the grace period is
    /// cancelled and its caller sees the connection close.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        // Every second: minions whose connection closed leave the registry,
        // and key changes made by `sealrpc key` (another process) take
        // effect.
        let hub = self.hub.clone();
        let refresher = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                hub.registry.prune();
                if let Err(e) = hub.refresh_keys() {
                    tracing::warn!("reading minion keys: {e}");
                }
            }
        });
        let result = self.server.run(shutdown).await;
        refresher.abort();
        result
    }
}

impl MasterHandle {
    /// Publishes `method(body)` to `target` (`*`, `id1,id2`, or a glob) and
    /// collects returns for up to `timeout`. Fails when the target matches
    /// no connected minion (it is never widened to a broadcast).
    pub async fn publish(
        &self,
        target: &str,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<JobReport, Error> {
        self.hub.publish(target, method, body, timeout).await
    }

    /// The ids of the connected, ready minions, sorted.
    pub fn minions(&self) -> Vec<String> {
        self.hub.registry.ready_ids()
    }

    /// Completes once at least `n` minions are connected and ready.
    pub async fn wait_for_minions(&self, n: usize) {
        self.hub.registry.wait_for(n).await
    }

    /// Re-reads the accepted minion keys (identity mode; the files only if
    /// their directory changed): a connected minion whose key was deleted or
    /// rejected is cut off, and the publish key is rotated so it cannot read
    /// later jobs. Returns the ids cut off. A running master does this every
    /// second by itself.
    pub fn refresh_keys(&self) -> Result<Vec<String>, Error> {
        self.hub.refresh_keys()
    }
}
