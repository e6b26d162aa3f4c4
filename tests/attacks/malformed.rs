//! A malformed frame costs only its own connection (CVE-2023-20897: a bad
//! message used to bring down Salt's master-side workers). While two
//! accepted minions hold a job, raw connections send garbage instead of a
//! handshake, a truncated handshake, an oversize frame, and garbage after a
//! completed handshake; each is closed, and the master goes on serving.
//! The other way round, garbage injected into a minion's own connection
//! costs the minion that connection only: it registers again and is served.
use crate::support::attack::{
    base_config, fast, guard, master, master_cfg, spawn_minion, Counter, Gate, Pki, T,
};
use crate::support::raw::{Raw, Session};
use crate::support::relay::{garbage_for_next_reply, Relay};
use bytes::Bytes;
use sealrpc::channel::{Client, Router};
use sealrpc::minion::Minion;
use sealrpc::wire::handshake::Initiator;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The master's frame limit in this test.
const MAX_FRAME: usize = 64 * 1024;

pub async fn malformed_frames_cost_one_connection(scheme: &str) {
    let pki = Pki::new("20897");
    let gate = Gate::default();
    let mut cfg = base_config();
    cfg.max_frame = MAX_FRAME;
    let builtins = sealrpc::builtin::register(Router::new());
    let mut c = master_cfg(&pki, scheme, builtins, cfg, false).await;
    let url = c.url(scheme);
    let fp = pki.master_fingerprint();
    for id in ["m1", "m2"] {
        let m = pki.minion(id);
        pki.accept(&m);
        let router = gate.route(sealrpc::builtin::register(Router::new()), "job.hold", id);
        c.minion(&url, id, router, m.config(Some(fp.clone()))).await;
    }
    // Both minions are busy with a job while the attacks run.
    let h = c.handle.clone();
    let held = tokio::spawn(async move { h.publish("*", "job.hold", Bytes::new(), T).await });
    gate.started(2).await;

    // Garbage instead of a handshake.
    let mut raw = Raw::connect(&url).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: master\r\n\r\n").await;
    raw.ending().await.assert_alert(3);
    // A truncated handshake frame 1.
    let (_, f1) = Initiator::start(&[9; 32]).expect("start");
    let mut raw = Raw::connect(&url).await;
    raw.send(&f1[..20]).await;
    raw.ending().await.assert_alert(3);
    // A truncated frame 3 after a good frame 1.
    let x = pki.minion("x1");
    pki.accept(&x);
    let (init, f1) = Initiator::start(x.keys.secret_bytes()).expect("start");
    let mut raw = Raw::connect(&url).await;
    raw.send(&f1).await;
    let f2 = raw.recv().await.expect("frame 2");
    let (f3, _) = init.finish(&f2, b"x1").expect("finish");
    raw.send(&f3[..f3.len() - 1]).await;
    raw.ending().await.assert_alert(3);
    // An oversize frame (over the master's limit). The master stops
    // reading mid-frame, so on TCP its close may reset the connection
    // before its alert is read: an alert, if any, and then the end.
    let mut raw = Raw::connect(&url).await;
    raw.send(&vec![0x53; MAX_FRAME + 1]).await;
    let end = raw.ending().await;
    assert!(end.frames.is_empty() || end.alert() == Some(3), "{end:?}");
    // Garbage after a completed handshake.
    let mut raw = Raw::connect(&url).await;
    raw.handshake(&x.keys, b"x1").await;
    raw.send(&[0u8; 100]).await;
    let end = raw.ending().await;
    assert_eq!(end.frames.len(), 1, "{end:?}");
    assert!(matches!(end.alert(), Some(1 | 2)), "{end:?}");
    // A sealed-looking envelope with a broken tag after a handshake.
    let mut raw = Raw::connect(&url).await;
    let (done, _) = raw.handshake(&x.keys, b"x1").await;
    let mut env = Session::new(&done).request("test.ping", b"");
    let last = env.len() - 1;
    env[last] ^= 1;
    raw.send(&env).await;
    raw.ending().await.assert_alert(1);

    // The held job completes on both minions, and the master serves on.
    gate.release(2);
    let report = held.await.expect("task").expect("publish");
    assert_eq!(report.returns.keys().collect::<Vec<_>>(), ["m1", "m2"]);
    assert!(report.all_ok(), "{report:?}");
    let ping = c.handle.publish("*", "test.ping", Bytes::new(), T).await;
    let ping = ping.expect("publish");
    assert_eq!(ping.returns.keys().collect::<Vec<_>>(), ["m1", "m2"]);
    assert!(ping.all_ok(), "{ping:?}");
    let admin = Client::connect(&url, pki.admin()).await.expect("connect");
    let pong: bool = admin.call_value("test.ping", &()).await.expect("call");
    assert!(pong);
    drop(admin);
    c.stop().await;
}

/// The other direction: garbage injected into a minion's own connection
/// costs that connection only. The minion drops it, registers again over a
/// new one, and is served as before.
pub async fn malformed_frame_to_a_minion_costs_one_connection(scheme: &str) {
    let pki = Pki::new("20897-minion");
    let count = Counter::default();
    let c = master(&pki, scheme, Router::new(), false).await;
    let m = pki.minion("m1");
    pki.accept(&m);
    let armed = Arc::new(AtomicBool::new(false));
    let relay = Relay::start(&c.url(scheme), garbage_for_next_reply(armed.clone())).await;
    let router = count.route(Router::new(), "job.count");
    let cfg = m.config(Some(pki.master_fingerprint()));
    let mut running =
        spawn_minion(Minion::new(&relay.url, "m1", router, cfg, fast()).expect("minion"));
    guard("m1 ready", running.ready.wait_for(|r| *r))
        .await
        .expect("ready");
    // The reply to the job's return arrives as garbage: the minion closes
    // that connection (the return was recorded before its reply was sent).
    armed.store(true, Ordering::SeqCst);
    let report = c.handle.publish("m1", "job.count", Bytes::new(), T).await;
    assert!(report.expect("publish").all_ok());
    relay.ended(1).await;
    // It registers again over a new connection and is served. (On ZeroMQ
    // this fails today: the new subscription refuses the master's PUB
    // session as `SessionReused`, because the old subscription's opener
    // retired that salt in the minion's registry for 2 x TTL when it was
    // dropped, while the master's PUB socket goes on sealing under it.
    // The minion cannot confirm its probe for 2 minutes.)
    relay.accepted(2).await;
    guard("m1 ready again", running.ready.wait_for(|r| *r))
        .await
        .expect("ready");
    guard("m1 registered", c.handle.wait_for_minions(1)).await;
    let report = c.handle.publish("m1", "job.count", Bytes::new(), T).await;
    assert!(report.expect("publish again").all_ok());
    assert_eq!(count.get(), 2);
    running.stop().await;
    c.stop().await;
}
