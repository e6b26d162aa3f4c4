//! Shared test plumbing: start a server on an ephemeral loopback port and
//! stop it deterministically (stop returns once every handler has finished,
//! so every server span has ended).
#![allow(dead_code)]
pub mod attack;
pub mod cli;
pub mod cluster;
pub mod netns;
pub mod raw;
pub mod relay;
#[cfg(feature = "otel")]
pub mod spans;
use sealrpc::channel::{ChannelConfig, Router, Server};
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Running {
    pub addr: SocketAddr,
    /// The URL clients connect to (any transport).
    pub url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), sealrpc::Error>>,
}

impl Running {
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops accepting, waits for in-flight handlers, returns.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("server task")
            .expect("server result");
    }
}

pub async fn start(router: Router, cfg: ChannelConfig) -> Running {
    start_with_grace(router, cfg, std::time::Duration::from_secs(5)).await
}

/// Starts a server listening on `url` (port 0 picks a free port).
pub async fn start_at(
    url: &str,
    router: Router,
    cfg: ChannelConfig,
    grace: std::time::Duration,
) -> Running {
    let server = Server::bind(url, router, cfg)
        .await
        .expect("bind")
        .with_grace(grace);
    run(server)
}

/// As [`start`], with the shutdown grace period for in-flight handlers.
pub async fn start_with_grace(
    router: Router,
    cfg: ChannelConfig,
    grace: std::time::Duration,
) -> Running {
    start_at("tcp://127.0.0.1:0", router, cfg, grace).await
}

fn run(server: Server) -> Running {
    let addr = server.local_addr().expect("addr");
    let url = server.local_url().expect("url");
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        addr,
        url,
        stop,
        task,
    }
}

pub fn builtins() -> Router {
    sealrpc::builtin::register(Router::new())
}

/// Opens captured request frames as a peer holding `key` would: for each
/// frame, its envelope length and its plaintext load. Panics (failing the
/// test) if any frame does not open.
pub fn open_captured_requests(key: &sealrpc::keys::Key, captured: &[u8]) -> Vec<(usize, Vec<u8>)> {
    use sealrpc::wire::{envelope::unix_ms, Kind, Opener, SessionRegistry};
    let keyring = std::sync::Arc::new(sealrpc::keys::Keyring::single(key.clone()));
    let registry = std::sync::Arc::new(SessionRegistry::new(60_000, 8));
    let mut opener = Opener::new(keyring, registry, Kind::Request, 60_000, usize::MAX);
    sealrpc::tap::split_frames(captured)
        .into_iter()
        .map(|mut f| {
            let o = opener
                .open(&mut f, unix_ms())
                .expect("open a captured request");
            (f.len(), f[o.load].to_vec())
        })
        .collect()
}
pub mod conformance;
