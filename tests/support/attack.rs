//! Plumbing for the attack suite (`tests/attacks.rs`): PKI directories for a
//! master and its minions, masters with node identities, handler counters
//! and gates. Raw connections are in `raw.rs`, relays in `relay.rs`.
use super::cluster::{self, Cluster};
use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, ReconnectPolicy, Router};
use sealrpc::keys::Key;
use sealrpc::master::{MasterOptions, MasterPki};
use sealrpc::minion::{Minion, MinionOptions};
use sealrpc::pki::{KeyPair, KeyState, MinionKeys, MASTER_NAME};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

/// Upper bound on any wait: a *failure* guard only (a missing defence can
/// leave a peer waiting forever); passing runs never reach it.
pub const GUARD: Duration = Duration::from_secs(30);
/// How long a test job may take to return.
pub const T: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test (instead of hanging) after [`GUARD`].
pub async fn guard<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing happened within {GUARD:?}"),
    }
}

/// A listen URL on loopback for `scheme` (`tcp`, `ws`, `zmq`), port 0.
pub fn listen_url(scheme: &str) -> String {
    match scheme {
        "ws" => "ws://127.0.0.1:0/sealrpc".to_owned(),
        s => format!("{s}://127.0.0.1:0"),
    }
}

/// Channel settings of an attack-suite peer: no silent reconnects (a
/// refused connection must surface as the call's error), 10 s calls.
pub fn base_config() -> ChannelConfig {
    let mut cfg = ChannelConfig::new(Key::generate());
    cfg.reconnect = None;
    cfg.timeout = Duration::from_secs(10);
    cfg
}

/// A scratch root holding a master PKI dir and minion PKI dirs; removed on drop.
pub struct Pki {
    root: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A minion's key pair, saved in its own PKI dir as `minion.key`.
pub struct MinionKey {
    pub id: String,
    pub dir: PathBuf,
    pub keys: KeyPair,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("sealrpc-attack-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the PKI root");
        Pki { root }
    }

    pub fn master_dir(&self) -> PathBuf {
        self.root.join("master")
    }

    pub fn options(&self, auto_accept: bool, untrusted_context: &[&str]) -> MasterOptions {
        MasterOptions {
            publish_port: 0,
            pki: Some(MasterPki {
                dir: self.master_dir(),
                auto_accept,
                untrusted_context: untrusted_context.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    /// The master's key fingerprint (creating its key pair now if needed,
    /// as the master itself would on first start).
    pub fn master_fingerprint(&self) -> String {
        let (keys, _) =
            KeyPair::load_or_create(&self.master_dir(), MASTER_NAME).expect("master key");
        keys.public().fingerprint()
    }

    pub fn registry(&self) -> MinionKeys {
        MinionKeys::open(&self.master_dir()).expect("minion key registry")
    }

    /// A fresh key pair for minion `id`, in its own PKI dir.
    pub fn minion(&self, id: &str) -> MinionKey {
        let dir = self.root.join(format!("minion-{id}"));
        let keys = KeyPair::generate().expect("generate");
        keys.save_new(&dir, "minion").expect("save minion key");
        MinionKey {
            id: id.to_owned(),
            dir,
            keys,
        }
    }

    /// Files `m`'s key as accepted, as `sealrpc key accept` would after
    /// the minion showed up (the registry's own auto-accept path).
    pub fn accept(&self, m: &MinionKey) {
        let state = self
            .registry()
            .observe(&m.id, &m.keys.public(), true)
            .expect("accept");
        assert_eq!(state, KeyState::Accepted, "{}", m.id);
    }

    /// The admin's settings (on the master's publisher list), pinning the
    /// master by fingerprint. Call after the master has started.
    pub fn admin(&self) -> ChannelConfig {
        let mut cfg = base_config();
        cfg.identity = Some(
            sealrpc::minion::connecting_identity(
                &self.master_dir(),
                "admin",
                b"",
                Some(self.master_fingerprint()),
            )
            .expect("admin identity"),
        );
        cfg
    }

    /// Every path under the master's PKI dir, sorted (to show nothing appeared).
    pub fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                out.push(e.path().display().to_string());
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.master_dir(), &mut out);
        out.sort();
        out
    }
}

impl MinionKey {
    /// Settings whose handshake tells the master `payload`; the master is
    /// pinned by `pin` (a fingerprint) or, with `None`, by `DIR/master.pub`
    /// (trust on first use).
    pub fn config_as(&self, payload: &[u8], pin: Option<String>) -> ChannelConfig {
        let mut cfg = base_config();
        cfg.identity = Some(
            sealrpc::minion::connecting_identity(&self.dir, "minion", payload, pin)
                .expect("minion identity"),
        );
        cfg
    }

    /// Settings of this minion, telling the master its own id.
    pub fn config(&self, pin: Option<String>) -> ChannelConfig {
        self.config_as(self.id.as_bytes(), pin)
    }
}

/// A call's typed error, whether the connect or the first call reports it
/// (the handshake completes on the initiator's side before the master
/// judges the peer, so a refusal arrives as an alert on the connection).
pub async fn refused_call(url: &str, cfg: ChannelConfig, method: &str) -> sealrpc::Error {
    match sealrpc::channel::Client::connect(url, cfg).await {
        Err(e) => e,
        Ok(client) => client
            .call(method, Bytes::new())
            .await
            .expect_err("a refused peer's call"),
    }
}

/// A master with node identities on one transport.
pub async fn master(pki: &Pki, scheme: &str, router: Router, auto_accept: bool) -> Cluster {
    master_cfg(pki, scheme, router, base_config(), auto_accept).await
}

pub async fn master_cfg(
    pki: &Pki,
    scheme: &str,
    router: Router,
    cfg: ChannelConfig,
    auto_accept: bool,
) -> Cluster {
    let url = listen_url(scheme);
    cluster::master_with(&[&url], router, cfg, pki.options(auto_accept, &[])).await
}

/// Counts the runs of one handler (a watch, so tests can wait on a count).
#[derive(Clone)]
pub struct Counter(Arc<watch::Sender<usize>>);

impl Default for Counter {
    fn default() -> Self {
        Counter(Arc::new(watch::Sender::new(0)))
    }
}

impl Counter {
    pub fn get(&self) -> usize {
        *self.0.borrow()
    }

    /// Completes once the handler has run `n` times.
    pub async fn reached(&self, n: usize) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// `router` with `method` counting its runs (replying `true`).
    pub fn route(&self, router: Router, method: &str) -> Router {
        let n = self.0.clone();
        router.route(method, move |_req| {
            let n = n.clone();
            async move {
                n.send_modify(|c| *c += 1);
                Ok(Bytes::from(rmp_serde::to_vec(&true).expect("encode")))
            }
        })
    }
}

/// A handler that holds every run until the test opens the gate.
#[derive(Clone)]
pub struct Gate {
    started: Arc<watch::Sender<usize>>,
    open: Arc<Semaphore>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            started: Arc::new(watch::Sender::new(0)),
            open: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Gate {
    /// `router` with `method`: counts the run as started, waits for the
    /// gate, then replies with `reply`.
    pub fn route(&self, router: Router, method: &str, reply: &str) -> Router {
        let (gate, reply) = (self.clone(), reply.to_owned());
        router.route(method, move |_req| {
            let (gate, reply) = (gate.clone(), reply.clone());
            async move {
                gate.started.send_modify(|n| *n += 1);
                if let Ok(p) = gate.open.acquire().await {
                    p.forget();
                }
                Ok(Bytes::from(rmp_serde::to_vec(&reply).expect("encode")))
            }
        })
    }

    /// Completes once `n` runs have started (and are held).
    pub async fn started(&self, n: usize) {
        let mut rx = self.started.subscribe();
        guard("handler runs", rx.wait_for(|s| *s >= n))
            .await
            .expect("gate");
    }

    /// Runs started so far.
    pub fn started_now(&self) -> usize {
        *self.started.borrow()
    }

    pub fn release(&self, n: usize) {
        self.open.add_permits(n);
    }
}

/// Registration retried quickly (10 ms doubling to 50 ms).
pub fn fast() -> MinionOptions {
    MinionOptions {
        backoff: ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        ..Default::default()
    }
}

/// A minion running on its own (not waited on): its ready watcher, its
/// stop switch and its task.
pub struct Running {
    pub ready: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), sealrpc::Error>>,
}

pub fn spawn_minion(minion: Minion) -> Running {
    let ready = minion.ready();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(minion.run(async {
        let _ = rx.await;
    }));
    Running { ready, stop, task }
}

impl Running {
    /// Stops it; it must have been running all along and stop cleanly.
    pub async fn stop(self) {
        assert!(!self.task.is_finished(), "the minion task exited");
        let _ = self.stop.send(());
        guard("minion stop", self.task)
            .await
            .expect("minion task")
            .expect("minion result");
    }
}
