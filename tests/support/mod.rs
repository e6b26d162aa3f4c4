//! Shared test plumbing: start a server on an ephemeral loopback port and
//! stop it deterministically (stop returns once every handler has finished,
//! so every server span has ended).
#![allow(dead_code)]
use sealrpc::channel::{ChannelConfig, Router, Server};
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), sealrpc::Error>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
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

/// As [`start`], with the shutdown grace period for in-flight handlers.
pub async fn start_with_grace(
    router: Router,
    cfg: ChannelConfig,
    grace: std::time::Duration,
) -> Running {
    let server = Server::bind("tcp://127.0.0.1:0", router, cfg)
        .await
        .expect("bind")
        .with_grace(grace);
    let addr = server.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running { addr, stop, task }
}

pub fn builtins() -> Router {
    sealrpc::builtin::register(Router::new())
}
