//! A master and three minions written against the library API (not the
//! CLI): the master listens on TCP, WebSocket and ZeroMQ; each minion
//! registers over one of them and serves a `disk.usage` job; the master
//! publishes to a glob, to a list and to everyone, and prints each report.
//!
//! Run: `cargo run --example master_minion`
use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, HandlerError, Router};
use sealrpc::keys::Key;
use sealrpc::master::Master;
use sealrpc::minion::{Minion, MinionOptions};
use std::time::Duration;

/// A minion's job: a made-up disk usage figure for a path, per minion.
fn minion_router(id: &'static str) -> Router {
    Router::new().route("disk.usage", move |req| async move {
        let (path,): (String,) = req.decode()?;
        let percent = (path.len() * 7 + id.len() * 13) % 100;
        let reply = format!("{id}: {path} is {percent}% full");
        rmp_serde::to_vec(&reply)
            .map(Bytes::from)
            .map_err(|e| HandlerError::new(e.to_string()))
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every peer shares one key (in production: `sealrpc keygen` + Key::load).
    let cfg = ChannelConfig::new(Key::generate());
    let listen = [
        "tcp://127.0.0.1:0",
        "ws://127.0.0.1:0/sealrpc",
        "zmq://127.0.0.1:0",
    ];
    let master = Master::bind(&listen, Router::new(), cfg.clone(), Default::default()).await?;
    let urls = master.local_urls()?;
    let jobs = master.handle();
    let (stop_master, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(master.run(async {
        let _ = stopped.await;
    }));

    let mut minions = Vec::new();
    for (id, url) in ["web1", "web2", "db1"].into_iter().zip(&urls) {
        let minion = Minion::new(
            url,
            id,
            minion_router(id),
            cfg.clone(),
            MinionOptions::default(),
        )?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        minions.push((
            stop,
            tokio::spawn(minion.run(async {
                let _ = stopped.await;
            })),
        ));
        println!("minion {id} connecting to {url}");
    }
    // Registration is an event: wait for it rather than sleeping.
    jobs.wait_for_minions(3).await;
    println!("connected minions: {:?}", jobs.minions());

    let arg = Bytes::from(rmp_serde::to_vec(&("/var",))?);
    for target in ["web*", "db1,web2", "*"] {
        let report = jobs
            .publish(target, "disk.usage", arg.clone(), Duration::from_secs(5))
            .await?;
        println!("job {} to {target:?}:", report.jid);
        for (id, r) in &report.returns {
            let text: String = rmp_serde::from_slice(&r.body).unwrap_or_default();
            println!("  {id} ok={} {text}", r.ok);
        }
        println!("  missing: {:?}", report.missing);
    }
    // A target matching nobody is refused, never widened to a broadcast.
    match jobs
        .publish("mail*", "disk.usage", arg, Duration::from_secs(1))
        .await
    {
        Ok(r) => println!("unexpected: {r:?}"),
        Err(e) => println!("\"mail*\": {e}"),
    }

    for (stop, task) in minions {
        let _ = stop.send(());
        task.await??;
    }
    let _ = stop_master.send(());
    serving.await??;
    Ok(())
}
