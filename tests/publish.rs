//! Publish and returns on every transport: targets (all, list, glob),
//! only targeted minions run the job, no-match refused, missing minions
//! reported, returns bound to the minion's connection, re-registration
//! after the master restarts.
mod support;

use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, Client, HandlerError, Router};
use sealrpc::job::{self, Hello, MinionResult, Return};
use sealrpc::keys::Key;
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cluster::{self, Cluster};

/// Which minion ran which job (id → jids), filled by the minions' handler.
type Ran = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn minion_router(id: &str, ran: &Ran) -> Router {
    let (id, ran) = (id.to_owned(), ran.clone());
    sealrpc::builtin::register(Router::new()).route("job.mark", move |req| {
        let (id, ran) = (id.clone(), ran.clone());
        async move {
            let tag: Vec<String> = req.decode()?;
            ran.lock()
                .map_err(|_| HandlerError::new("poisoned"))?
                .entry(id.clone())
                .or_default()
                .extend(tag);
            Ok(Bytes::from(
                rmp_serde::to_vec(&id).map_err(|e| HandlerError::new(e.to_string()))?,
            ))
        }
    })
}

fn mark(tag: &str) -> Bytes {
    rmp_serde::to_vec(&[tag]).expect("encode").into()
}

const T: Duration = Duration::from_secs(10);

async fn cluster_of(scheme: &str, ids: &[&str], cfg: &ChannelConfig, ran: &Ran) -> Cluster {
    let mut c = cluster::master(
        &[&format!("{scheme}://127.0.0.1:0")],
        Router::new(),
        cfg.clone(),
    )
    .await;
    let url = c.url(scheme);
    for id in ids {
        c.minion(&url, id, minion_router(id, ran), cfg.clone())
            .await;
    }
    c
}

fn ran_by(ran: &Ran, tag: &str) -> Vec<String> {
    let ran = ran.lock().expect("lock");
    ran.iter()
        .filter(|(_, tags)| tags.iter().any(|t| t == tag))
        .map(|(id, _)| id.clone())
        .collect()
}

async fn targets_select_exactly(scheme: &str) {
    let cfg = ChannelConfig::new(Key::generate());
    let ran = Ran::default();
    let c = cluster_of(scheme, &["db1", "web1", "web2"], &cfg, &ran).await;
    let h = &c.handle;
    assert_eq!(h.minions(), ["db1", "web1", "web2"]);

    let all = h
        .publish("*", "job.mark", mark("all"), T)
        .await
        .expect("all");
    assert_eq!(
        all.returns.keys().collect::<Vec<_>>(),
        ["db1", "web1", "web2"]
    );
    assert!(all.all_ok(), "{all:?}");
    assert_eq!(ran_by(&ran, "all"), ["db1", "web1", "web2"]);

    let list = h
        .publish("web2,db1", "job.mark", mark("list"), T)
        .await
        .expect("list");
    assert_eq!(list.returns.keys().collect::<Vec<_>>(), ["db1", "web2"]);
    let glob = h
        .publish("web*", "job.mark", mark("glob"), T)
        .await
        .expect("glob");
    assert_eq!(glob.returns.keys().collect::<Vec<_>>(), ["web1", "web2"]);
    let one = h
        .publish("web1", "job.mark", mark("one"), T)
        .await
        .expect("one");
    assert_eq!(one.returns.keys().collect::<Vec<_>>(), ["web1"]);
    // Each value is what that minion's handler returned (its own id).
    let who: String = rmp_serde::from_slice(&one.returns["web1"].body).expect("decode");
    assert_eq!(who, "web1");

    // A broadcast job comes after these: by then every earlier job has
    // reached (or not) every minion on its ordered channel.
    h.publish("*", "test.ping", Bytes::new(), T)
        .await
        .expect("fence");
    assert_eq!(ran_by(&ran, "list"), ["db1", "web2"]);
    assert_eq!(ran_by(&ran, "glob"), ["web1", "web2"]);
    assert_eq!(ran_by(&ran, "one"), ["web1"]);

    // No match: refused, never widened; nothing runs.
    for none in ["nomatch*", "ghost", "ghost1,ghost2"] {
        let err = h
            .publish(none, "job.mark", mark("none"), T)
            .await
            .expect_err(none);
        assert!(
            err.to_string().contains("matches no connected minion"),
            "{err}"
        );
    }
    // A list naming one absent minion: the others run, the absent one is missing.
    let part = h
        .publish("web1,ghost", "job.mark", mark("part"), T)
        .await
        .expect("part");
    assert_eq!(part.returns.keys().collect::<Vec<_>>(), ["web1"]);
    assert_eq!(part.missing, ["ghost"]);
    assert!(!part.all_ok());
    h.publish("*", "test.ping", Bytes::new(), T)
        .await
        .expect("fence");
    assert!(ran_by(&ran, "none").is_empty());
    c.stop().await;
}

async fn failures_and_missing_are_reported(scheme: &str) {
    let cfg = ChannelConfig::new(Key::generate());
    let ran = Ran::default();
    let c = cluster_of(scheme, &["m1", "m2"], &cfg, &ran).await;
    let h = &c.handle;
    let failed = h
        .publish("*", "test.fail", Bytes::new(), T)
        .await
        .expect("publish");
    assert_eq!(failed.returns.len(), 2);
    for r in failed.returns.values() {
        assert!(!r.ok);
        assert!(String::from_utf8_lossy(&r.body).contains("failing as asked"));
    }
    let unknown = h
        .publish("m1", "no.such", Bytes::new(), T)
        .await
        .expect("publish");
    assert!(!unknown.returns["m1"].ok);
    // A job longer than the timeout: both minions are reported missing.
    let slow = rmp_serde::to_vec(&[30.0]).expect("encode");
    let late = h
        .publish("*", "test.sleep", slow.into(), Duration::from_millis(300))
        .await
        .expect("publish");
    assert!(late.returns.is_empty(), "{late:?}");
    assert_eq!(late.missing, ["m1", "m2"]);
    c.stop().await;
}

async fn returns_are_bound_to_the_minion_connection(scheme: &str) {
    let cfg = ChannelConfig::new(Key::generate());
    let ran = Ran::default();
    let c = cluster_of(scheme, &["m1"], &cfg, &ran).await;
    // Another peer holding the key cannot return for m1, nor take its id.
    let other = Client::connect(&c.url(scheme), cfg.clone())
        .await
        .expect("connect");
    let forged = Return {
        jid: "1".into(),
        id: "m1".into(),
        result: MinionResult {
            ok: true,
            body: ByteBuf::new(),
        },
    };
    let err = other
        .call_value::<_, ()>(job::RETURN, &forged)
        .await
        .expect_err("forged return");
    assert!(
        err.to_string()
            .contains("not registered on this connection"),
        "{err}"
    );
    let err = other
        .call_value::<_, job::Welcome>(job::HELLO, &Hello { id: "m1".into() })
        .await
        .expect_err("takeover");
    assert!(err.to_string().contains("already connected"), "{err}");
    for bad in ["../etc", "a/b", "x\0y", ""] {
        let err = other
            .call_value::<_, job::Welcome>(job::HELLO, &Hello { id: bad.into() })
            .await
            .expect_err(bad);
        assert!(err.to_string().contains("invalid minion id"), "{err}");
    }
    c.stop().await;
}

async fn minion_registers_again_after_master_restart(scheme: &str) {
    let cfg = ChannelConfig::new(Key::generate());
    let ran = Ran::default();
    let first = cluster::master(
        &[&format!("{scheme}://127.0.0.1:0")],
        Router::new(),
        cfg.clone(),
    )
    .await;
    let url = first.url(scheme);
    // The minion runs on its own, across the restart.
    let minion = sealrpc::minion::Minion::new(
        &url,
        "m1",
        minion_router("m1", &ran),
        cfg.clone(),
        Default::default(),
    )
    .expect("minion");
    let mut ready = minion.ready();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(minion.run(async {
        let _ = rx.await;
    }));
    ready.wait_for(|r| *r).await.expect("ready");
    first
        .handle
        .publish("m1", "test.ping", Bytes::new(), T)
        .await
        .expect("before");
    first.stop().await;
    ready.wait_for(|r| !*r).await.expect("lost");
    let second = cluster::master(&[&url], Router::new(), cfg.clone()).await;
    second.handle.wait_for_minions(1).await;
    let r = second
        .handle
        .publish("m1", "test.ping", Bytes::new(), T)
        .await
        .expect("after");
    assert!(r.all_ok(), "{r:?}");
    let _ = stop.send(());
    task.await.expect("task").expect("minion");
    second.stop().await;
}

macro_rules! per_transport {
    ($($name:ident: $scheme:literal),*) => {$(
        mod $name {
            #[tokio::test]
            async fn targets_select_exactly() {
                super::targets_select_exactly($scheme).await
            }
            #[tokio::test]
            async fn failures_and_missing_are_reported() {
                super::failures_and_missing_are_reported($scheme).await
            }
            #[tokio::test]
            async fn returns_are_bound_to_the_minion_connection() {
                super::returns_are_bound_to_the_minion_connection($scheme).await
            }
            #[tokio::test]
            async fn minion_registers_again_after_master_restart() {
                super::minion_registers_again_after_master_restart($scheme).await
            }
        }
    )*};
}

per_transport!(tcp: "tcp", ws: "ws", zmq: "zmq");

/// One master on all three transports, minions on each: `*` reaches all.
#[tokio::test]
async fn one_master_three_transports() {
    let cfg = ChannelConfig::new(Key::generate());
    let ran = Ran::default();
    let urls = [
        "tcp://127.0.0.1:0",
        "ws://127.0.0.1:0/sealrpc",
        "zmq://127.0.0.1:0",
    ];
    let mut c = cluster::master(&urls, Router::new(), cfg.clone()).await;
    for (scheme, id) in [("tcp", "t1"), ("ws", "w1"), ("zmq", "z1"), ("zmq", "z2")] {
        let url = c.url(scheme);
        c.minion(&url, id, minion_router(id, &ran), cfg.clone())
            .await;
    }
    let r = c
        .handle
        .publish("*", "job.mark", mark("x"), T)
        .await
        .expect("publish");
    assert_eq!(
        r.returns.keys().collect::<Vec<_>>(),
        ["t1", "w1", "z1", "z2"]
    );
    let r = c
        .handle
        .publish("z2,t1", "job.mark", mark("y"), T)
        .await
        .expect("publish");
    assert_eq!(r.returns.keys().collect::<Vec<_>>(), ["t1", "z2"]);
    c.handle
        .publish("*", "test.ping", Bytes::new(), T)
        .await
        .expect("fence");
    assert_eq!(ran_by(&ran, "y"), ["t1", "z2"]);
    c.stop().await;
}
