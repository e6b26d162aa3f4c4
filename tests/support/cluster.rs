//! A master and its minions in one process, started and stopped
//! deterministically: `minion` returns once the minion is registered (and,
//! on ZeroMQ, subscribed); `stop` stops every minion (running jobs finish
//! and return) and then the master (every handler finished).
use sealrpc::channel::{ChannelConfig, Router};
use sealrpc::master::{Master, MasterHandle, MasterOptions};
use sealrpc::minion::{Minion, MinionOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Task = JoinHandle<Result<(), sealrpc::Error>>;

pub struct Cluster {
    pub handle: MasterHandle,
    pub urls: Vec<String>,
    stop: oneshot::Sender<()>,
    task: Task,
    minions: Vec<(oneshot::Sender<()>, Task)>,
}

/// Starts a master listening on `urls` (port 0: free ports), serving `router`.
pub async fn master(urls: &[&str], router: Router, cfg: ChannelConfig) -> Cluster {
    master_on_pub_port(urls, router, cfg, 0).await
}

pub async fn master_on_pub_port(
    urls: &[&str],
    router: Router,
    cfg: ChannelConfig,
    pub_port: u16,
) -> Cluster {
    let opts = MasterOptions {
        publish_port: pub_port,
        pki: None,
    };
    master_with(urls, router, cfg, opts).await
}

/// A master with explicit options (node identities, say).
pub async fn master_with(
    urls: &[&str],
    router: Router,
    cfg: ChannelConfig,
    opts: MasterOptions,
) -> Cluster {
    let master = Master::bind(urls, router, cfg, opts)
        .await
        .expect("bind master");
    let urls = master.local_urls().expect("urls");
    let handle = master.handle();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(master.run(async {
        let _ = rx.await;
    }));
    Cluster {
        handle,
        urls,
        stop,
        task,
        minions: Vec::new(),
    }
}

impl Cluster {
    /// The master's URL with this scheme (`tcp`, `ws`, `zmq`).
    pub fn url(&self, scheme: &str) -> String {
        self.urls
            .iter()
            .find(|u| u.starts_with(&format!("{scheme}://")))
            .cloned()
            .unwrap_or_else(|| panic!("no {scheme} listener in {:?}", self.urls))
    }

    /// Starts minion `id` on `url` and waits until it is registered.
    pub async fn minion(&mut self, url: &str, id: &str, router: Router, cfg: ChannelConfig) {
        self.minion_with(url, id, router, cfg, MinionOptions::default())
            .await
    }

    pub async fn minion_with(
        &mut self,
        url: &str,
        id: &str,
        router: Router,
        cfg: ChannelConfig,
        opts: MinionOptions,
    ) {
        let minion = Minion::new(url, id, router, cfg, opts).expect("minion");
        let mut ready = minion.ready();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(minion.run(async {
            let _ = rx.await;
        }));
        ready.wait_for(|r| *r).await.expect("minion ready");
        self.minions.push((stop, task));
    }

    /// Stops every minion, then the master.
    pub async fn stop(self) {
        for (stop, task) in self.minions {
            let _ = stop.send(());
            task.await.expect("minion task").expect("minion result");
        }
        let _ = self.stop.send(());
        self.task
            .await
            .expect("master task")
            .expect("master result");
    }
}
