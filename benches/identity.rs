//! What node identities cost a caller, over loopback TCP, one call at a
//! time: connect + first `test.ping` including the Noise XX handshake (the
//! admin identity, as `sealrpc call`/`publish` on the master host; and an
//! accepted minion, whose key the master looks up on disk), the same in
//! shared-key mode, and a call on an established identity-mode connection.
//! `taskset -c 0 cargo bench --bench identity`
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sealrpc::channel::{ChannelConfig, Client, Router};
use sealrpc::keys::Key;
use sealrpc::master::{Master, MasterOptions, MasterPki};
use sealrpc::minion::connecting_identity;
use sealrpc::pki::{KeyPair, MinionKeys};
use std::path::{Path, PathBuf};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A master (the CLI's: built-in methods plus the minion protocol) on an
/// ephemeral TCP port, running; its URL.
async fn master(cfg: ChannelConfig, pki: Option<MasterPki>) -> String {
    let opts = MasterOptions {
        publish_port: 0,
        pki,
    };
    let router = sealrpc::builtin::register(Router::new());
    let m = Master::bind(&["tcp://127.0.0.1:0"], router, cfg, opts)
        .await
        .expect("bind");
    let url = m.local_urls().expect("url").remove(0);
    tokio::spawn(m.run(std::future::pending()));
    url
}

fn identity(dir: &Path, name: &str, payload: &[u8]) -> ChannelConfig {
    let mut cfg = ChannelConfig::new(Key::generate());
    cfg.identity = Some(connecting_identity(dir, name, payload, None).expect("identity"));
    cfg
}

async fn connect_and_ping(url: &str, cfg: &ChannelConfig) {
    let client = Client::connect(url, cfg.clone()).await.expect("connect");
    client.call("test.ping", Bytes::new()).await.expect("ping");
}

fn identity_cost(c: &mut Criterion) {
    let rt = runtime();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("sealrpc-bench-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let master_dir = dir.join("master");
    let minion_dir = dir.join("minion");

    // A master in identity mode; an accepted minion key.
    let pki = MasterPki {
        dir: master_dir.clone(),
        auto_accept: false,
        untrusted_context: Vec::new(),
    };
    let minion = KeyPair::generate().expect("key");
    minion.save_new(&minion_dir, "m1").expect("save");
    MinionKeys::open(&master_dir)
        .expect("registry")
        .observe("m1", &minion.public(), true)
        .expect("accept");
    let id_url = rt.block_on(master(ChannelConfig::new(Key::generate()), Some(pki)));
    // The admin key the master created; the master's own master.pub is the pin.
    let admin = identity(&master_dir, "admin", b"");
    let as_minion = identity(&minion_dir, "m1", b"m1");
    // Shared-key mode.
    let shared = ChannelConfig::new(Key::generate());
    let shared_url = rt.block_on(master(shared.clone(), None));

    let mut g = c.benchmark_group("identity_tcp");
    g.bench_function("connect_first_call_identity_admin", |b| {
        b.to_async(&rt).iter(|| connect_and_ping(&id_url, &admin))
    });
    g.bench_function("connect_first_call_identity_minion", |b| {
        b.to_async(&rt)
            .iter(|| connect_and_ping(&id_url, &as_minion))
    });
    g.bench_function("connect_first_call_shared_key", |b| {
        b.to_async(&rt)
            .iter(|| connect_and_ping(&shared_url, &shared))
    });
    let established = rt.block_on(async {
        let client = Client::connect(&id_url, admin.clone())
            .await
            .expect("connect");
        client.call("test.ping", Bytes::new()).await.expect("ping");
        client
    });
    g.bench_function("call_on_established_identity_connection", |b| {
        b.to_async(&rt).iter(|| async {
            established
                .call("test.ping", Bytes::new())
                .await
                .expect("ping")
        })
    });
    let established_shared = rt.block_on(async {
        Client::connect(&shared_url, shared.clone())
            .await
            .expect("connect")
    });
    g.bench_function("call_on_established_shared_key_connection", |b| {
        b.to_async(&rt).iter(|| async {
            established_shared
                .call("test.ping", Bytes::new())
                .await
                .expect("ping")
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, identity_cost);
criterion_main!(benches);
