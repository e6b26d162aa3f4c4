//! The demo's second part: node identities. A master with a PKI dir, a
//! minion with its own key pair: the minion's key waits as pending, is
//! accepted, the minion registers and runs a job, then its key is deleted
//! and the master cuts it off.
use sealrpc::channel::{ChannelConfig, Router};
use sealrpc::keys::Key;
use sealrpc::master::{Master, MasterOptions, MasterPki};
use sealrpc::minion::{connecting_identity, Minion, MinionOptions};
use sealrpc::pki::{KeyPair, KeyState, MinionKeys};
use std::time::Duration;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub async fn run() -> Result<(), String> {
    let base = std::env::temp_dir().join(format!("sealrpc-demo-pki-{}", std::process::id()));
    let result = run_in(&base).await;
    let _ = std::fs::remove_dir_all(&base);
    result
}

async fn run_in(base: &std::path::Path) -> Result<(), String> {
    let (master_dir, minion_dir) = (base.join("master"), base.join("web1"));
    let minion_key = KeyPair::generate().map_err(err)?;
    minion_key.save_new(&minion_dir, "web1").map_err(err)?;
    let opts = MasterOptions {
        publish_port: 0,
        pki: Some(MasterPki {
            dir: master_dir.clone(),
            ..MasterPki::default()
        }),
    };
    let router = sealrpc::builtin::register(Router::new());
    let cfg = ChannelConfig::new(Key::generate());
    let master = Master::bind(&["zmq://127.0.0.1:0"], router, cfg.clone(), opts)
        .await
        .map_err(err)?;
    let url = master.local_urls().map_err(err)?.remove(0);
    let jobs = master.handle();
    let (stop_master, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(master.run(async {
        let _ = stopped.await;
    }));
    println!("\nNode identities (a Noise XX handshake on every connection):");
    println!("  master on {url}, keys in {}", master_dir.display());

    let mut mcfg = cfg.clone();
    mcfg.identity = Some(connecting_identity(&minion_dir, "web1", b"web1", None).map_err(err)?);
    let opts = MinionOptions {
        backoff: sealrpc::channel::ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..MinionOptions::default()
    };
    let minion = Minion::new(
        &url,
        "web1",
        sealrpc::builtin::register(Router::new()),
        mcfg,
        opts,
    )
    .map_err(err)?;
    let mut ready = minion.ready();
    let (stop_minion, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(minion.run(async {
        let _ = stopped.await;
    }));
    let keys = MinionKeys::open(&master_dir).map_err(err)?;
    // The minion's first handshake files its key as pending.
    for _ in 0..500 {
        let pending = keys
            .list()
            .map_err(err)?
            .iter()
            .any(|e| e.state == KeyState::Pending);
        if pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for e in keys.list().map_err(err)? {
        println!(
            "  sealrpc key list: {:<9} {} {}",
            e.state.as_str(),
            e.id,
            e.fingerprint
        );
    }
    match jobs
        .publish(
            "web1",
            "test.ping",
            Default::default(),
            Duration::from_secs(1),
        )
        .await
    {
        Ok(r) => println!("  publish to the pending minion -> unexpected: {r:?}"),
        Err(e) => println!("  publish to the pending minion -> {e}"),
    }
    keys.accept("web1").map_err(err)?;
    println!("  sealrpc key accept web1");
    // (The borrow `wait_for` returns is dropped at once: holding it would
    // block the minion's own updates of the flag.)
    let registered = tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
        .await
        .is_ok_and(|r| r.is_ok());
    if !registered {
        return Err("the accepted minion did not register within 10 s".into());
    }
    println!(
        "  web1 registered; it pinned the master's key in {} (trust on first use)",
        minion_dir.join("master.pub").display()
    );
    let report = jobs
        .publish("*", "test.ping", Default::default(), Duration::from_secs(5))
        .await
        .map_err(err)?;
    println!(
        "  publish test.ping to \"*\" -> {:?} returned, missing {:?}",
        report.returns.keys().collect::<Vec<_>>(),
        report.missing
    );
    keys.delete("web1").map_err(err)?;
    let cut = jobs.refresh_keys().map_err(err)?;
    println!("  sealrpc key delete web1 -> cut off {cut:?}; the publish key was rotated");
    match jobs
        .publish("*", "test.ping", Default::default(), Duration::from_secs(1))
        .await
    {
        Ok(r) => println!(
            "  publish to \"*\" -> returned {:?}",
            r.returns.keys().collect::<Vec<_>>()
        ),
        Err(e) => println!("  publish to \"*\" -> {e}"),
    }
    let _ = stop_minion.send(());
    let _ = running.await;
    let _ = stop_master.send(());
    let _ = serving.await;
    Ok(())
}
