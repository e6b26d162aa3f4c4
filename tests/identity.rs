//! Node identities (issue #4) at the library level, on every transport:
//! the minion key lifecycle (pending → accepted, a second key for a known id
//! denied, auto-accept), cutting a minion off (its key deleted or rejected)
//! while the others keep receiving jobs, the publisher ACL, the master pin
//! (trust on first use, a configured fingerprint, a changed master key), the
//! ZeroMQ publish key rotation and publish signatures, and shared-key mode.
//!
//! Every wait is on an event (a ready watcher, the registry on disk, a relay's
//! connection count, a frame on a socket) bounded by `WAIT`, which only turns
//! a hang into a failure; nothing sleeps for a fixed time to be correct.
mod support;

use bytes::{Bytes, BytesMut};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey, SIGNATURE_LENGTH};
use sealrpc::channel::{
    ChannelConfig, Client, PubSender, Published, ReconnectPolicy, Router, Subscription,
};
use sealrpc::error::WireError;
use sealrpc::job::{self, Hello, JobReport, PublishKey, PublishRequest, Ready, Welcome};
use sealrpc::keys::{Key, Keyring};
use sealrpc::master::{Master, MasterHandle, MasterOptions, MasterPki};
use sealrpc::minion::{connecting_identity, Minion, MinionOptions};
use sealrpc::pki::{KeyPair, KeyState, MinionKeys, PublicKey};
use sealrpc::transport::pubsub::{Publisher, Subscriber};
use sealrpc::wire::envelope::unix_ms;
use sealrpc::wire::{load, Kind, Opener, PublishLoad, Sealer, SessionRegistry};
use sealrpc::Error;
use serde_bytes::ByteBuf;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a publish collects returns.
const T: Duration = Duration::from_secs(10);
/// The bound on any wait: reaching it is a failure, never a pacing.
const WAIT: Duration = Duration::from_secs(30);
const MAX_FRAME: usize = 1 << 20;

// ---------------------------------------------------------------- plumbing

/// A scratch directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("sealrpc-ident-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Dir(p)
    }

    /// The master's PKI dir (created by the master).
    fn master(&self) -> PathBuf {
        self.0.join("master")
    }

    /// A minion's (or another client's) own PKI dir.
    fn node(&self, name: &str) -> PathBuf {
        self.0.join(format!("node-{name}"))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `cond` (state another task or the disk holds) until it holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// A master in identity mode, running.
struct RunningMaster {
    handle: MasterHandle,
    urls: Vec<String>,
    dir: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), Error>>,
}

async fn master(url: &str, dir: &Path, auto_accept: bool) -> RunningMaster {
    let opts = MasterOptions {
        publish_port: 0,
        pki: Some(MasterPki {
            dir: dir.to_owned(),
            auto_accept,
            untrusted_context: Vec::new(),
        }),
    };
    // The key is never used in identity mode: the handshake's keys are.
    let cfg = ChannelConfig::new(Key::generate());
    let m = Master::bind(&[url], Router::new(), cfg, opts)
        .await
        .expect("bind master");
    let urls = m.local_urls().expect("urls");
    let handle = m.handle();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(m.run(async {
        let _ = rx.await;
    }));
    RunningMaster {
        handle,
        urls,
        dir: dir.to_owned(),
        stop,
        task,
    }
}

impl RunningMaster {
    fn url(&self) -> String {
        self.urls[0].clone()
    }

    fn keys(&self) -> MinionKeys {
        MinionKeys::open(&self.dir).expect("registry")
    }

    /// Every stored minion key: (id, state).
    fn registry(&self) -> Vec<(String, KeyState)> {
        self.keys()
            .list()
            .expect("list")
            .into_iter()
            .map(|e| (e.id, e.state))
            .collect()
    }

    fn has(&self, id: &str, state: KeyState) -> bool {
        self.registry().iter().any(|(i, s)| i == id && *s == state)
    }

    async fn ping(&self, target: &str) -> Result<JobReport, Error> {
        self.handle
            .publish(target, "test.ping", Bytes::new(), T)
            .await
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("master task")
            .expect("master result");
    }
}

/// Files `id`'s key as accepted before the master sees it (as `sealrpc key
/// accept` would after a first contact).
fn pre_accept(master_dir: &Path, id: &str, key: PublicKey) {
    let keys = MinionKeys::open(master_dir).expect("registry");
    assert_eq!(
        keys.observe(id, &key, true).expect("file"),
        KeyState::Accepted
    );
}

/// The key pair `DIR/NAME.key`, created if missing.
fn key_pair(dir: &Path, name: &str) -> KeyPair {
    if !KeyPair::key_path(dir, name).exists() {
        KeyPair::generate()
            .expect("generate")
            .save_new(dir, name)
            .expect("save");
    }
    KeyPair::load(dir, name).expect("load")
}

/// A channel config with the identity `DIR/NAME.key` telling the master
/// `payload`, the master pinned by `fingerprint` or `DIR/master.pub`.
fn identity_cfg(dir: &Path, name: &str, payload: &[u8], fp: Option<String>) -> ChannelConfig {
    key_pair(dir, name);
    let mut cfg = ChannelConfig::new(Key::generate());
    cfg.identity = Some(connecting_identity(dir, name, payload, fp).expect("identity"));
    cfg
}

/// A minion `id` with its key pair in `dir`.
fn minion_cfg(dir: &Path, id: &str) -> ChannelConfig {
    identity_cfg(dir, id, id.as_bytes(), None)
}

/// The minion's own backoff, short so that retries are many and quick.
fn quick() -> MinionOptions {
    MinionOptions {
        backoff: ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        },
        ..MinionOptions::default()
    }
}

/// A minion task, its ready watcher, and how many times it has been
/// registered (counted by a task watching it: a registration the master
/// cuts again a moment later is counted too).
struct RunningMinion {
    ready: watch::Receiver<bool>,
    registrations: Arc<AtomicUsize>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), Error>>,
}

fn spawn_minion(url: &str, id: &str, cfg: ChannelConfig) -> RunningMinion {
    let router = sealrpc::builtin::register(Router::new());
    let m = Minion::new(url, id, router, cfg, quick()).expect("minion");
    let ready = m.ready();
    let registrations = Arc::new(AtomicUsize::new(0));
    let (mut watching, count) = (m.ready(), registrations.clone());
    tokio::spawn(async move {
        while watching.wait_for(|r| *r).await.is_ok() {
            count.fetch_add(1, Ordering::SeqCst);
            if watching.wait_for(|r| !*r).await.is_err() {
                break;
            }
        }
    });
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(m.run(async {
        let _ = rx.await;
    }));
    RunningMinion {
        ready,
        registrations,
        stop,
        task,
    }
}

impl RunningMinion {
    fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn registrations(&self) -> usize {
        self.registrations.load(Ordering::SeqCst)
    }

    async fn wait_ready(&mut self) {
        within("the minion to be ready", self.ready.wait_for(|r| *r))
            .await
            .expect("minion task alive");
    }

    async fn wait_lost(&mut self) {
        within(
            "the minion to lose its master",
            self.ready.wait_for(|r| !*r),
        )
        .await
        .expect("minion task alive");
    }

    /// Stops it; it must still have been running (never gave up).
    async fn stop(self) {
        assert!(!self.task.is_finished(), "the minion task ended by itself");
        let _ = self.stop.send(());
        within("the minion to stop", self.task)
            .await
            .expect("minion task")
            .expect("minion result");
    }
}

/// A TCP relay in front of a master that counts the connections made
/// through it: each is one attempt by whoever connects (a minion's retry).
struct Relay {
    addr: SocketAddr,
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let addr = listener.local_addr().expect("addr");
        let (tx, count) = watch::channel(0usize);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tx.send_modify(|n| *n += 1);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay { addr, count, task }
    }

    /// `url` with the relay's address in place of the master's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("scheme");
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{scheme}://{}{path}", self.addr)
    }

    fn attempts(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until at least `n` connections have been made through it.
    async fn wait_attempts(&mut self, n: usize) {
        within(
            &format!("{n} connection attempts"),
            self.count.wait_for(|c| *c >= n),
        )
        .await
        .expect("relay alive");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The socket address of a `tcp://`, `ws://` or `zmq://` URL.
fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let host_port = rest.split('/').next().expect("host");
    host_port.parse().expect("socket address")
}

fn publish_request(target: &str) -> PublishRequest {
    PublishRequest {
        target: target.into(),
        method: "test.ping".into(),
        body: ByteBuf::new(),
        timeout_ms: T.as_millis() as u64,
    }
}

fn ids(r: &JobReport) -> Vec<&str> {
    r.returns.keys().map(String::as_str).collect()
}

/// A refused handshake as the client sees its first call fail: the
/// master's `NotAuthorized` alert, or the connection it closed.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::Wire(WireError::PeerAlert(3)) | Error::ConnectionClosed | Error::Transport(_)
    )
}

// ------------------------------------------------------ minion lifecycle

/// A new key waits in pending and its minion runs nothing; once accepted
/// the minion registers by itself (its retry loop) and runs jobs. Another
/// key for the same id is denied: the original kept, the impostor refused.
async fn lifecycle_pending_accept_deny(scheme: &str) {
    let d = Dir::new(&format!("lifecycle-{scheme}"));
    let m = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), false).await;
    let mut relay = Relay::start(addr_of(&m.url())).await;
    let mut m1 = spawn_minion(&relay.url(&m.url()), "m1", minion_cfg(&d.node("m1"), "m1"));
    let m1_key = key_pair(&d.node("m1"), "m1").public();

    // Its key lands in pending, and it keeps trying without being let in.
    eventually("m1 pending", || m.has("m1", KeyState::Pending)).await;
    relay.wait_attempts(3).await;
    assert!(!m1.is_ready(), "a pending minion must not be registered");
    assert_eq!(m1.registrations(), 0, "a pending minion was registered");
    assert!(m.handle.minions().is_empty());
    assert_eq!(m.registry(), [("m1".to_owned(), KeyState::Pending)]);
    assert_eq!(
        m.keys().state("m1", &m1_key).expect("state"),
        KeyState::Pending
    );
    for target in ["m1", "*", "m*"] {
        let err = m.ping(target).await.expect_err("nothing to publish to");
        assert!(
            err.to_string().contains("matches no connected minion"),
            "{err}"
        );
    }

    // Accepted: it registers by itself and runs jobs.
    let changes = m.keys().accept("m1").expect("accept");
    assert_eq!(changes.len(), 1);
    m1.wait_ready().await;
    m.handle.wait_for_minions(1).await;
    assert_eq!(m.handle.minions(), ["m1"]);
    assert_eq!(m1.registrations(), 1);
    let r = m.ping("m1").await.expect("publish");
    assert!(r.all_ok(), "{r:?}");
    assert_eq!(ids(&r), ["m1"]);
    let r = m.ping("*").await.expect("publish");
    assert_eq!(ids(&r), ["m1"]);

    // An impostor: the same id, another key.
    let mut impostor_relay = Relay::start(addr_of(&m.url())).await;
    let impostor_dir = d.node("impostor");
    let impostor = spawn_minion(
        &impostor_relay.url(&m.url()),
        "m1",
        minion_cfg(&impostor_dir, "m1"),
    );
    let impostor_key = key_pair(&impostor_dir, "m1").public();
    assert_ne!(impostor_key, m1_key);
    eventually("the impostor's key denied", || {
        m.has("m1", KeyState::Denied)
    })
    .await;
    impostor_relay.wait_attempts(3).await;
    let keys = m.keys();
    assert_eq!(
        keys.state("m1", &impostor_key).expect("state"),
        KeyState::Denied
    );
    assert_eq!(
        keys.state("m1", &m1_key).expect("state"),
        KeyState::Accepted
    );
    let accepted = keys.accepted_keys().expect("accepted");
    assert_eq!(
        accepted,
        [("m1".to_owned(), m1_key)],
        "the original key is kept"
    );
    // The admin cannot accept over the denied key without deleting first.
    assert!(keys.accept("m1").is_err());
    assert!(!impostor.is_ready());
    assert_eq!(impostor.registrations(), 0, "the impostor was registered");
    // The original still runs jobs, and only it answers for m1.
    for _ in 0..3 {
        let r = m.ping("m1").await.expect("publish");
        assert!(r.all_ok(), "{r:?}");
    }
    assert!(m1.is_ready());
    assert_eq!(m1.registrations(), 1, "the original was never disturbed");
    assert_eq!(m.handle.minions(), ["m1"]);

    impostor.stop().await;
    m1.stop().await;
    m.stop().await;
}

/// With auto-accept a new minion's key is accepted at once.
async fn auto_accept_accepts_at_once(scheme: &str) {
    let d = Dir::new(&format!("auto-{scheme}"));
    let m = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), true).await;
    let mut m1 = spawn_minion(&m.url(), "m1", minion_cfg(&d.node("m1"), "m1"));
    m1.wait_ready().await;
    assert_eq!(m1.registrations(), 1, "accepted at the first attempt");
    assert_eq!(m.registry(), [("m1".to_owned(), KeyState::Accepted)]);
    let r = m.ping("*").await.expect("publish");
    assert!(r.all_ok(), "{r:?}");
    assert_eq!(ids(&r), ["m1"]);
    m1.stop().await;
    m.stop().await;
}

// ------------------------------------------------------------------ cut-off

#[derive(Clone, Copy, Debug)]
enum Removal {
    Delete,
    Reject,
}

/// Two minions serving; one's key is deleted (or rejected) and the master
/// told at once: that minion is disconnected and refused on every retry,
/// the other keeps receiving jobs (on ZeroMQ: across the publish-key
/// rotation, first down its connection, then on the PUB socket).
async fn removed_key_is_cut_off(scheme: &str, how: Removal) {
    let d = Dir::new(&format!("cut-{scheme}-{how:?}"));
    for id in ["m1", "m2"] {
        pre_accept(&d.master(), id, key_pair(&d.node(id), id).public());
    }
    let m = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), false).await;
    let mut relay = Relay::start(addr_of(&m.url())).await;
    let mut m1 = spawn_minion(&relay.url(&m.url()), "m1", minion_cfg(&d.node("m1"), "m1"));
    let mut m2 = spawn_minion(&m.url(), "m2", minion_cfg(&d.node("m2"), "m2"));
    m1.wait_ready().await;
    m2.wait_ready().await;
    let r = m.ping("*").await.expect("publish");
    assert_eq!(ids(&r), ["m1", "m2"]);
    assert!(r.all_ok(), "{r:?}");

    match how {
        Removal::Delete => m.keys().delete("m1").map(drop),
        Removal::Reject => m.keys().reject("m1").map(drop),
    }
    .expect("remove m1's key");
    let cut = m.handle.refresh_keys().expect("refresh");
    // The master's own 1 s poll may have got there a moment before us;
    // either way m1 is gone by the time refresh_keys returns.
    assert!(cut.is_empty() || cut == ["m1"], "{cut:?}");
    assert!(!m.handle.minions().contains(&"m1".to_owned()));
    m1.wait_lost().await;
    let at_cut = relay.attempts();
    assert_eq!(m1.registrations(), 1);

    // m1 keeps trying and keeps being refused.
    relay.wait_attempts(at_cut + 3).await;
    assert!(!m1.is_ready());
    assert_eq!(m1.registrations(), 1, "m1 was let in again");
    match how {
        // A deleted key is a new key again: filed as pending, not let in.
        Removal::Delete => {
            eventually("m1 filed as pending again", || {
                m.has("m1", KeyState::Pending)
            })
            .await
        }
        Removal::Reject => assert!(m.has("m1", KeyState::Rejected)),
    }
    assert!(!m.has("m1", KeyState::Accepted));
    let err = m.ping("m1").await.expect_err("m1 is cut off");
    assert!(
        err.to_string().contains("matches no connected minion"),
        "{err}"
    );

    // m2 keeps receiving jobs: broadcast and targeted, several times (on
    // ZeroMQ the first ones travel down its connection until it holds the
    // new publish key, the later ones on the PUB socket under that key).
    for _ in 0..6 {
        let r = m.ping("*").await.expect("publish to the rest");
        assert_eq!(ids(&r), ["m2"], "{r:?}");
        assert!(r.all_ok() && r.missing.is_empty(), "{r:?}");
    }
    let r = m.ping("m2").await.expect("publish");
    assert!(r.all_ok(), "{r:?}");
    let r = m.ping("m1,m2").await.expect("publish");
    assert_eq!(ids(&r), ["m2"]);
    assert_eq!(r.missing, ["m1"]);
    assert!(m2.is_ready());
    assert!(!m1.is_ready());
    assert_eq!((m1.registrations(), m2.registrations()), (1, 1));
    assert_eq!(m.handle.minions(), ["m2"]);

    m1.stop().await;
    m2.stop().await;
    m.stop().await;
}

/// A connection that completed its handshake before its key was deleted is
/// cut off too: it cannot register (and get the new publish key) afterwards.
async fn connection_from_before_the_removal_cannot_register(scheme: &str) {
    let d = Dir::new(&format!("early-{scheme}"));
    pre_accept(&d.master(), "m3", key_pair(&d.node("m3"), "m3").public());
    let m = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), false).await;
    let early = Client::connect(&m.url(), minion_cfg(&d.node("m3"), "m3"))
        .await
        .expect("connect");
    // Any answer proves the master accepted the handshake.
    let err = early
        .call_value::<_, ()>(
            job::KEY_ACK,
            &job::KeyAck {
                id: "m3".into(),
                epoch: 0,
            },
        )
        .await
        .expect_err("not registered yet");
    assert!(err.to_string().contains("not registered"), "{err}");

    m.keys().delete("m3").expect("delete");
    m.handle.refresh_keys().expect("refresh");
    let hello = early
        .call_value::<_, Welcome>(job::HELLO, &Hello { id: "m3".into() })
        .await;
    assert!(
        hello.is_err(),
        "a minion whose key was deleted registered over a connection made before the deletion: {hello:?}"
    );
    assert!(m.handle.minions().is_empty(), "{:?}", m.handle.minions());
    m.stop().await;
}

/// ZeroMQ: the removed minion's publish key opens nothing sealed after the
/// rotation. Shown on the real PUB socket: a raw SUB socket (what the
/// removed minion still has; PUB/SUB does not authenticate subscribers)
/// receives every broadcast job; those sealed before the cut open under
/// the old key, those after fail with `UnknownKey` under it and open under
/// the new key, which only the remaining minions get, each down its own
/// authenticated connection.
#[tokio::test]
async fn zmq_rotation_locks_the_removed_minion_out_of_later_jobs() {
    let d = Dir::new("rotation");
    for id in ["m2", "spy", "keeper"] {
        pre_accept(&d.master(), id, key_pair(&d.node(id), id).public());
    }
    let m = master("zmq://127.0.0.1:0", &d.master(), false).await;
    let url = m.url();
    let mut m2 = spawn_minion(&url, "m2", minion_cfg(&d.node("m2"), "m2"));
    m2.wait_ready().await;

    // spy: an accepted minion that keeps the publish key it is welcomed with.
    let (spy, _spy_jobs) =
        Client::connect_with_publishes(&url, minion_cfg(&d.node("spy"), "spy"), 16)
            .await
            .expect("connect spy");
    let welcome: Welcome = spy
        .call_value(job::HELLO, &Hello { id: "spy".into() })
        .await
        .expect("spy hello");
    let old_key = Key::from_bytes(key32(welcome.publish_key.as_deref().expect("publish key")));
    let signer = VerifyingKey::from_bytes(&key32(welcome.signing_key.as_deref().expect("signer")))
        .expect("signing key");

    // keeper: a minion driven by hand, so that the test decides when it
    // holds the new key (then every `*` job goes out on the PUB socket).
    let (keeper, mut keeper_jobs) =
        Client::connect_with_publishes(&url, minion_cfg(&d.node("keeper"), "keeper"), 16)
            .await
            .expect("connect keeper");
    let kw: Welcome = keeper
        .call_value(
            job::HELLO,
            &Hello {
                id: "keeper".into(),
            },
        )
        .await
        .expect("keeper hello");
    assert_eq!(kw.publish_key, welcome.publish_key, "one publish key");
    assert_eq!(kw.epoch, welcome.epoch);
    let ready = Ready {
        id: "keeper".into(),
        token: kw.probe.clone().expect("probe token"),
    };
    keeper
        .call_value::<_, ()>(job::READY, &ready)
        .await
        .expect("keeper ready");
    m.handle.wait_for_minions(2).await;

    // The removed minion's SUB socket: the broadcast topic and its own.
    let pub_addr = SocketAddr::new(addr_of(&url).ip(), welcome.publish_port.expect("PUB port"));
    let mut sub = Subscriber::connect_zmq(pub_addr, &["*\0", "m:spy\0"], MAX_FRAME)
        .await
        .expect("subscribe");
    let mut old = opener(&old_key);
    // The master probes spy's topic until spy confirms (it never will):
    // the first probe proves both subscriptions are active.
    loop {
        let frame = within("a probe", sub.recv()).await.expect("recv");
        let p = open_signed(&mut old, &signer, frame).expect("a probe opens under the key");
        if p.method == job::PROBE {
            break;
        }
    }

    // Before the cut: a broadcast job opens under the old key.
    let mut new: Option<Opener> = None;
    let jid =
        broadcast_answered_by_keeper(&m, &keeper, &mut sub, &signer, &mut old, &mut new).await;
    assert!(!jid.is_empty());

    // Cut spy off.
    m.keys().delete("spy").expect("delete");
    let cut = m.handle.refresh_keys().expect("refresh");
    assert!(cut.is_empty() || cut == ["spy"], "{cut:?}");
    within("spy to be disconnected", spy.disconnected()).await;

    // keeper gets the new key down its connection, and says it holds it.
    let update = loop {
        let p = within("the new publish key", keeper_jobs.recv())
            .await
            .expect("keeper's connection open");
        if p.method == job::PUBLISH_KEY {
            break rmp_serde::from_slice::<PublishKey>(&p.body).expect("publish key");
        }
    };
    assert_eq!(update.epoch, welcome.epoch + 1);
    let new_key = Key::from_bytes(key32(&update.key));
    assert_ne!(new_key.id(), old_key.id(), "the publish key rotated");
    let ack = job::KeyAck {
        id: "keeper".into(),
        epoch: update.epoch,
    };
    keeper
        .call_value::<_, ()>(job::KEY_ACK, &ack)
        .await
        .expect("key ack");
    new = Some(opener(&new_key));

    // Jobs after the rotation: m2 still runs every one; each goes out on
    // the PUB socket (keeper holds the new key), where the old key fails.
    for _ in 0..4 {
        broadcast_answered_by_keeper(&m, &keeper, &mut sub, &signer, &mut old, &mut new).await;
    }
    m2.stop().await;
    m.stop().await;
}

/// Publishes `test.ping` to `*` and reads the PUB socket until the job's
/// message arrives. Without `new` (before the rotation) it must open under
/// the old key; with it, it must fail under the old key (`UnknownKey`) and
/// open under the new one. keeper returns it (it is driven by hand), m2
/// returns it by itself. Returns the job id.
async fn broadcast_answered_by_keeper(
    m: &RunningMaster,
    keeper: &Client,
    sub: &mut Subscriber,
    signer: &VerifyingKey,
    old: &mut Opener,
    new: &mut Option<Opener>,
) -> String {
    let h = m.handle.clone();
    let job = tokio::spawn(async move { h.publish("*", "test.ping", Bytes::new(), T).await });
    let p = loop {
        let frame = within("the job on the PUB socket", sub.recv())
            .await
            .expect("recv");
        let under_old = open_signed(old, signer, frame.clone());
        let p = match (new.as_mut(), under_old) {
            (None, r) => r.expect("opens under the old key"),
            // A leftover probe sealed before the rotation.
            (Some(_), Ok(p)) => {
                assert_eq!(
                    p.method,
                    job::PROBE,
                    "job {} opened under the old key",
                    p.jid
                );
                continue;
            }
            (Some(new), Err(e)) => {
                assert!(
                    matches!(e, WireError::UnknownKey(_)),
                    "under the old key: {e:?}"
                );
                open_signed(new, signer, frame).expect("opens under the new key")
            }
        };
        if p.method == "test.ping" {
            break p;
        }
    };
    let ret = job::Return {
        jid: p.jid.clone(),
        id: "keeper".into(),
        result: job::MinionResult {
            ok: true,
            body: ByteBuf::from(rmp_serde::to_vec(&true).expect("encode")),
        },
    };
    keeper
        .call_value::<_, ()>(job::RETURN, &ret)
        .await
        .expect("keeper returns");
    let r = within("the job's returns", job)
        .await
        .expect("publish task")
        .expect("publish");
    assert_eq!(r.jid, p.jid);
    assert_eq!(ids(&r), ["keeper", "m2"], "{r:?}");
    assert!(r.all_ok(), "{r:?}");
    r.jid
}

fn key32(b: &[u8]) -> [u8; 32] {
    b.try_into().expect("32 bytes")
}

fn opener(key: &Key) -> Opener {
    Opener::new(
        Arc::new(Keyring::single(key.clone())),
        Arc::new(SessionRegistry::new(60_000, 64)),
        Kind::Publish,
        60_000,
        MAX_FRAME,
    )
}

/// A PUB message's job as a SUB peer reads it: checks and strips the
/// master's signature, then opens the envelope (on a copy).
struct Opened {
    jid: String,
    method: String,
}

fn open_signed(
    o: &mut Opener,
    signer: &VerifyingKey,
    frame: BytesMut,
) -> Result<Opened, WireError> {
    let split = frame
        .len()
        .checked_sub(SIGNATURE_LENGTH)
        .ok_or(WireError::BadSignature)?;
    let sig = ed25519_dalek::Signature::from_slice(&frame[split..])
        .map_err(|_| WireError::BadSignature)?;
    signer
        .verify(&frame[..split], &sig)
        .map_err(|_| WireError::BadSignature)?;
    let mut env = frame[..split].to_vec();
    let opened = o.open(&mut env, unix_ms())?;
    let l: PublishLoad = load::decode(&env[opened.load]).expect("publish load");
    Ok(Opened {
        jid: l.jid.to_owned(),
        method: l.method.to_owned(),
    })
}

// ----------------------------------------------------------- publisher ACL

/// The admin key and `publishers/*.pub` may publish; an accepted minion's
/// connection may not (`PermissionDenied`), nor register as another id; an
/// identity that is neither is refused at its first call.
async fn publisher_acl(scheme: &str) {
    let d = Dir::new(&format!("acl-{scheme}"));
    let ops_dir = d.node("ops");
    let ops = key_pair(&ops_dir, "ops").public();
    let publishers = d.master().join("publishers");
    std::fs::create_dir_all(&publishers).expect("publishers dir");
    std::fs::write(publishers.join("ops.pub"), format!("{}\n", ops.to_hex())).expect("ops.pub");
    pre_accept(&d.master(), "m1", key_pair(&d.node("m1"), "m1").public());
    pre_accept(&d.master(), "m2", key_pair(&d.node("m2"), "m2").public());
    let m = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), false).await;
    let mut m1 = spawn_minion(&m.url(), "m1", minion_cfg(&d.node("m1"), "m1"));
    m1.wait_ready().await;

    // The admin key, as `sealrpc publish` on the master host uses it (the
    // master's own master.pub is the pin).
    let admin = Client::connect(&m.url(), identity_cfg(&m.dir, "admin", b"", None))
        .await
        .expect("connect admin");
    let r: JobReport = admin
        .call_value(job::PUBLISH, &publish_request("*"))
        .await
        .expect("the admin publishes");
    assert_eq!(ids(&r), ["m1"]);
    assert!(r.all_ok(), "{r:?}");
    // A publisher key added under publishers/ (trust on first use pins the master).
    let ops_client = Client::connect(&m.url(), identity_cfg(&ops_dir, "ops", b"", None))
        .await
        .expect("connect ops");
    let r: JobReport = ops_client
        .call_value(job::PUBLISH, &publish_request("m1"))
        .await
        .expect("a listed publisher publishes");
    assert!(r.all_ok(), "{r:?}");
    // A publisher is no minion: it cannot register.
    let err = admin
        .call_value::<_, Welcome>(job::HELLO, &Hello { id: "m9".into() })
        .await
        .expect_err("the admin is not a minion");
    assert!(err.to_string().contains("not minion m9"), "{err}");

    // An accepted minion's connection may not publish.
    let m2 = Client::connect(&m.url(), minion_cfg(&d.node("m2"), "m2"))
        .await
        .expect("connect m2");
    let err = m2
        .call_value::<_, JobReport>(job::PUBLISH, &publish_request("*"))
        .await
        .expect_err("a minion publishing");
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
    // ... nor register, return or confirm as another minion.
    let err = m2
        .call_value::<_, Welcome>(job::HELLO, &Hello { id: "m1".into() })
        .await
        .expect_err("m2 registering as m1");
    assert!(err.to_string().contains("not minion m1"), "{err}");
    let forged = job::Return {
        jid: r.jid.clone(),
        id: "m1".into(),
        result: job::MinionResult {
            ok: true,
            body: ByteBuf::new(),
        },
    };
    let err = m2
        .call_value::<_, ()>(job::RETURN, &forged)
        .await
        .expect_err("m2 returning for m1");
    assert!(err.to_string().contains("not minion m1"), "{err}");
    // Its own id is fine (the connection still works after the refusals).
    let welcome: Welcome = m2
        .call_value(job::HELLO, &Hello { id: "m2".into() })
        .await
        .expect("m2 registers as itself");
    assert_eq!(welcome.publish_port.is_some(), scheme == "zmq");

    // Neither a publisher nor a minion: a fresh key saying nothing.
    let stranger_dir = d.node("stranger");
    let stranger =
        Client::connect(&m.url(), identity_cfg(&stranger_dir, "stranger", b"", None)).await;
    let refused = match stranger {
        Err(e) => e,
        Ok(c) => c
            .call_value::<_, JobReport>(job::PUBLISH, &publish_request("*"))
            .await
            .expect_err("a stranger publishing"),
    };
    assert!(is_refusal(&refused), "{refused:?}");
    // Nothing of it was filed, and nothing ran beyond the two jobs above.
    let filed: Vec<String> = m.registry().into_iter().map(|(id, _)| id).collect();
    assert_eq!(filed, ["m1", "m2"]);

    m1.stop().await;
    m.stop().await;
}

// ------------------------------------------------------------------ pinning

/// Trust on first use writes `DIR/master.pub`; a configured fingerprint is
/// used instead of it.
async fn pinning_tofu_and_fingerprint(scheme: &str) {
    let d = Dir::new(&format!("pin-{scheme}"));
    let m = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), true).await;
    let master_pub = std::fs::read(d.master().join("master.pub")).expect("master.pub");
    let master_key =
        PublicKey::from_hex(std::str::from_utf8(&master_pub).expect("utf8")).expect("key");

    let tofu_dir = d.node("m1");
    assert!(!tofu_dir.join("master.pub").exists());
    let mut m1 = spawn_minion(&m.url(), "m1", minion_cfg(&tofu_dir, "m1"));
    m1.wait_ready().await;
    let pinned = std::fs::read(tofu_dir.join("master.pub")).expect("TOFU wrote master.pub");
    assert_eq!(pinned, master_pub);

    // The right fingerprint (in the colon form): let in, no file written.
    let fp_dir = d.node("m2");
    let colons = master_key
        .fingerprint()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).expect("hex"))
        .collect::<Vec<_>>()
        .join(":");
    let cfg = identity_cfg(&fp_dir, "m2", b"m2", Some(colons.to_uppercase()));
    let mut m2 = spawn_minion(&m.url(), "m2", cfg);
    m2.wait_ready().await;
    assert!(!fp_dir.join("master.pub").exists());

    // A wrong fingerprint: refused, and the minion keeps trying.
    let bad_dir = d.node("m3");
    let wrong = KeyPair::generate().expect("key").public().fingerprint();
    let cfg = identity_cfg(&bad_dir, "m3", b"m3", Some(wrong.clone()));
    let Err(err) = Client::connect(&m.url(), cfg.clone()).await else {
        panic!("connected to a master that does not match the fingerprint");
    };
    match &err {
        Error::NotAuthorized(why) => {
            assert!(why.contains("configured master fingerprint"), "{why}");
            assert!(
                why.contains(&master_key.fingerprint()) && why.contains(&wrong),
                "{why}"
            );
        }
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
    let mut relay = Relay::start(addr_of(&m.url())).await;
    let m3 = spawn_minion(&relay.url(&m.url()), "m3", cfg);
    relay.wait_attempts(4).await;
    assert!(!m3.is_ready());
    assert_eq!(m3.registrations(), 0);
    assert!(!m3.task.is_finished(), "the minion gave up");
    // It never finished a handshake with that master: its id was never told.
    assert!(
        !m.registry().iter().any(|(id, _)| id == "m3"),
        "{:?}",
        m.registry()
    );
    assert!(!bad_dir.join("master.pub").exists());
    assert_eq!(m.handle.minions(), ["m1", "m2"]);

    m3.stop().await;
    m2.stop().await;
    m1.stop().await;
    m.stop().await;
}

/// The master restarts at the same address with another key: the minion
/// that pinned the first refuses it (its pin unchanged) and keeps trying;
/// once the real master is back, it registers again.
async fn pinning_refuses_a_changed_master_key(scheme: &str) {
    let d = Dir::new(&format!("repin-{scheme}"));
    let first = master(&format!("{scheme}://127.0.0.1:0"), &d.master(), true).await;
    let url = first.url();
    let mut relay = Relay::start(addr_of(&url)).await;
    let m1_dir = d.node("m1");
    let mut m1 = spawn_minion(&relay.url(&url), "m1", minion_cfg(&m1_dir, "m1"));
    m1.wait_ready().await;
    let pin = std::fs::read(m1_dir.join("master.pub")).expect("pinned");

    first.stop().await;
    m1.wait_lost().await;
    let other_dir = d.0.join("other-master");
    let other = master(&url, &other_dir, true).await;
    assert_eq!(other.url(), url, "the same address");
    assert_ne!(
        std::fs::read(other_dir.join("master.pub")).expect("other key"),
        pin
    );
    let at_restart = relay.attempts();
    relay.wait_attempts(at_restart + 4).await;
    assert!(!m1.is_ready());
    assert_eq!(m1.registrations(), 1, "registered with another master");
    assert!(!m1.task.is_finished(), "the minion gave up");
    assert_eq!(
        std::fs::read(m1_dir.join("master.pub")).expect("pin"),
        pin,
        "pin unchanged"
    );
    assert!(
        other.registry().is_empty(),
        "m1 told its id to another master"
    );
    assert!(other.handle.minions().is_empty());

    // The real master back at the address: m1 is let in again.
    other.stop().await;
    let back = master(&url, &d.master(), true).await;
    m1.wait_ready().await;
    assert_eq!(m1.registrations(), 2);
    let r = back.ping("m1").await.expect("publish");
    assert!(r.all_ok(), "{r:?}");
    m1.stop().await;
    back.stop().await;
}

// ---------------------------------------------------------- shared-key mode

/// Without a PKI dir nothing changed: the shared key is the only
/// credential (every holder may publish), and no handshake runs.
async fn shared_key_mode_unchanged(scheme: &str) {
    let cfg = ChannelConfig::new(Key::generate());
    let mut c = support::cluster::master(
        &[&format!("{scheme}://127.0.0.1:0")],
        Router::new(),
        cfg.clone(),
    )
    .await;
    let url = c.url(scheme);
    c.minion(
        &url,
        "m1",
        sealrpc::builtin::register(Router::new()),
        cfg.clone(),
    )
    .await;
    let r = c
        .handle
        .publish("*", "test.ping", Bytes::new(), T)
        .await
        .expect("publish");
    assert!(r.all_ok() && ids(&r) == ["m1"], "{r:?}");
    let client = Client::connect(&url, cfg.clone()).await.expect("connect");
    let r: JobReport = client
        .call_value(job::PUBLISH, &publish_request("m1"))
        .await
        .expect("a key holder publishes");
    assert!(r.all_ok(), "{r:?}");
    assert!(client.server().is_none(), "no handshake in shared-key mode");
    // Another key is refused.
    let wrong = Client::connect(&url, ChannelConfig::new(Key::generate())).await;
    let err = match wrong {
        Err(e) => e,
        Ok(w) => w
            .call_value::<_, JobReport>(job::PUBLISH, &publish_request("m1"))
            .await
            .expect_err("a wrong key"),
    };
    assert!(
        matches!(
            err,
            Error::Wire(WireError::PeerAlert(_)) | Error::ConnectionClosed
        ),
        "{err:?}"
    );
    c.stop().await;
}

macro_rules! per_transport {
    ($($name:ident: $scheme:literal),*) => {$(
        mod $name {
            use super::Removal;
            #[tokio::test]
            async fn lifecycle_pending_accept_deny() {
                super::lifecycle_pending_accept_deny($scheme).await
            }
            #[tokio::test]
            async fn auto_accept_accepts_at_once() {
                super::auto_accept_accepts_at_once($scheme).await
            }
            #[tokio::test]
            async fn deleted_key_is_cut_off() {
                super::removed_key_is_cut_off($scheme, Removal::Delete).await
            }
            #[tokio::test]
            async fn rejected_key_is_cut_off() {
                super::removed_key_is_cut_off($scheme, Removal::Reject).await
            }
            #[tokio::test]
            async fn connection_from_before_the_removal_cannot_register() {
                super::connection_from_before_the_removal_cannot_register($scheme).await
            }
            #[tokio::test]
            async fn publisher_acl() {
                super::publisher_acl($scheme).await
            }
            #[tokio::test]
            async fn pinning_tofu_and_fingerprint() {
                super::pinning_tofu_and_fingerprint($scheme).await
            }
            #[tokio::test]
            async fn pinning_refuses_a_changed_master_key() {
                super::pinning_refuses_a_changed_master_key($scheme).await
            }
            #[tokio::test]
            async fn shared_key_mode_unchanged() {
                super::shared_key_mode_unchanged($scheme).await
            }
        }
    )*};
}

per_transport!(tcp: "tcp", ws: "ws", zmq: "zmq");

// --------------------------------------------------------- signed publishes

/// A PUB message as the master's `PubSender` makes it: the sealed job,
/// then (identity mode) an Ed25519 signature over the sealed bytes.
fn pub_frame(sealer: &mut Sealer, jid: &str, signer: Option<&SigningKey>) -> BytesMut {
    let mut frame = BytesMut::new();
    let job = PublishLoad {
        jid,
        to: "*",
        method: "test.ping",
        body: &[],
        deadline_ms: 1000,
        trace: load::Carrier(Vec::new()),
    };
    sealer
        .seal(Kind::Publish, unix_ms(), MAX_FRAME, &mut frame, |b| {
            load::encode(&job, b)
        })
        .expect("seal");
    if let Some(s) = signer {
        let sig = s.sign(&frame);
        frame.extend_from_slice(&sig.to_bytes());
    }
    frame
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The real `PubSender` emits `envelope ‖ signature` under its signing
/// key: the frames the next test makes by hand have the same layout.
#[tokio::test]
async fn pub_sender_signs_every_message() {
    let key = Key::generate();
    let signer = signing_key();
    let sender = PubSender::bind("127.0.0.1:0", key.clone(), Some(signer.clone()), MAX_FRAME)
        .await
        .expect("bind");
    assert_eq!(
        sender.verifying_key(),
        Some(signer.verifying_key().to_bytes())
    );
    let addr = sender.local_addr().expect("addr");
    let mut sub = Subscriber::connect_zmq(addr, &["*\0"], MAX_FRAME)
        .await
        .expect("sub");
    let job = sealrpc::channel::Job::new("j1".into(), "test.ping".into(), Bytes::new(), T, None);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok(f) = sub.recv().await {
            if tx.send(f).await.is_err() {
                break;
            }
        }
    });
    // Slow joiner: publish until the subscription is active.
    let frame = within("a published frame", async {
        loop {
            sender.send(&job, "*").await.expect("send");
            match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                Ok(Some(f)) => break f,
                Ok(None) => panic!("subscriber ended"),
                Err(_) => continue,
            }
        }
    })
    .await;
    let p = open_signed(&mut opener(&key), &signer.verifying_key(), frame.clone()).expect("opens");
    assert_eq!(p.jid, "j1");
    let other = signing_key().verifying_key();
    assert_eq!(
        open_signed(&mut opener(&key), &other, frame).err(),
        Some(WireError::BadSignature)
    );
    // Unsigned in shared-key mode.
    let plain = PubSender::bind("127.0.0.1:0", key, None, MAX_FRAME)
        .await
        .expect("bind");
    assert_eq!(plain.verifying_key(), None);
}

/// A minion's `Subscription` returns only jobs signed by the master's key:
/// on one PUB socket (ZeroMQ keeps order per subscriber), unsigned,
/// foreign-signed, tampered, re-signed-elsewhere and wrong-key messages
/// sent before a good one are all dropped, and the good one is returned.
#[tokio::test]
async fn subscription_drops_publishes_not_signed_by_the_master() {
    let key = Key::generate();
    let master_sig = signing_key();
    let other_sig = signing_key();
    let publisher = Publisher::bind_zmq("127.0.0.1:0", MAX_FRAME)
        .await
        .expect("bind");
    let addr = publisher.local_addr().expect("addr");
    let cfg = ChannelConfig::new(Key::generate());
    let registry = Arc::new(SessionRegistry::new(60_000, 64));
    let mut sub = Subscription::connect(
        addr,
        "m1",
        &cfg,
        key.clone(),
        Some(master_sig.verifying_key().to_bytes()),
        registry,
    )
    .await
    .expect("subscribe");
    let (tx, mut jobs) = tokio::sync::mpsc::channel::<Published>(64);
    tokio::spawn(async move {
        while let Ok(p) = sub.next().await {
            if tx.send(p).await.is_err() {
                break;
            }
        }
    });
    let mut sealer = Sealer::new(key.clone(), rand::random());
    let publish = |frame: BytesMut| publisher.publish(b"*\0", frame.freeze());

    // Slow joiner: good messages until one comes through.
    within("the subscription to be active", async {
        let mut n = 0;
        loop {
            n += 1;
            publish(pub_frame(
                &mut sealer,
                &format!("sync-{n}"),
                Some(&master_sig),
            ))
            .await
            .expect("publish");
            match tokio::time::timeout(Duration::from_millis(20), jobs.recv()).await {
                Ok(Some(p)) => {
                    assert!(p.jid.starts_with("sync-"), "{}", p.jid);
                    break;
                }
                Ok(None) => panic!("subscription ended"),
                Err(_) => continue,
            }
        }
    })
    .await;

    // The forgeries, each before a good message on the same stream.
    let unsigned = pub_frame(&mut sealer, "bad-unsigned", None);
    let foreign = pub_frame(&mut sealer, "bad-foreign", Some(&other_sig));
    let mut tampered = pub_frame(&mut sealer, "bad-tampered", Some(&master_sig));
    tampered[45] ^= 1;
    // A valid master signature, but over another message.
    let mut resigned = pub_frame(&mut sealer, "bad-resigned", None);
    let donor = pub_frame(&mut sealer, "donor", Some(&master_sig));
    resigned.extend_from_slice(&donor[donor.len() - SIGNATURE_LENGTH..]);
    // Signed by the master but sealed under another publish key (a removed
    // minion's old key, say).
    let mut stale = Sealer::new(Key::generate(), rand::random());
    let wrong_key = pub_frame(&mut stale, "bad-wrong-key", Some(&master_sig));
    let short = BytesMut::from(&b"too short for a signature"[..]);
    let good = pub_frame(&mut sealer, "good-1", Some(&master_sig));
    for f in [
        unsigned,
        foreign,
        tampered,
        resigned,
        wrong_key,
        short,
        good.clone(),
    ] {
        publish(f).await.expect("publish");
    }
    assert_eq!(next_job(&mut jobs).await, "good-1");
    // A replay of the good message is dropped too.
    publish(good).await.expect("publish");
    publish(pub_frame(&mut sealer, "good-2", Some(&master_sig)))
        .await
        .expect("publish");
    assert_eq!(next_job(&mut jobs).await, "good-2");
}

/// The next job that is not one of the slow-joiner sync messages.
async fn next_job(jobs: &mut tokio::sync::mpsc::Receiver<Published>) -> String {
    loop {
        let p = within("a job", jobs.recv())
            .await
            .expect("subscription alive");
        if !p.jid.starts_with("sync-") {
            return p.jid;
        }
    }
}
