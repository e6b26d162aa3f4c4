//! Who a peer is: an accepted minion cannot act under another's id
//! (CVE-2024-38822); a minion refuses a man in the middle and an
//! impersonated master (CVE-2022-22935); a target never resolves to a
//! minion whose key is not accepted (CVE-2022-22941).
use crate::support::attack::{
    fast, guard, master, refused_call, spawn_minion, Counter, Gate, Pki, T,
};
use crate::support::relay::{forward_all, Mitm, Relay};
use bytes::Bytes;
use sealrpc::channel::{Client, Router};
use sealrpc::error::WireError;
use sealrpc::job::{self, Hello, MinionResult, Ready, Return, Welcome};
use sealrpc::minion::Minion;
use sealrpc::pki::{KeyPair, KeyState, MASTER_NAME, MASTER_PIN_FILE};
use sealrpc::wire::envelope::unix_ms;
use sealrpc::Error;
use serde_bytes::ByteBuf;

fn builtins() -> Router {
    sealrpc::builtin::register(Router::new())
}

fn not_minion(e: Error, id: &str) {
    let want = format!("this connection is not minion {id}");
    assert!(matches!(&e, Error::Remote(m) if m.contains(&want)), "{e:?}");
}

pub async fn minion_cannot_act_as_another(scheme: &str) {
    let pki = Pki::new("38822");
    let gate = Gate::default();
    let mut c = master(&pki, scheme, Router::new(), false).await;
    let url = c.url(scheme);
    let fp = pki.master_fingerprint();
    let (a, b) = (pki.minion("A"), pki.minion("B"));
    pki.accept(&a);
    pki.accept(&b);
    let router = gate.route(builtins(), "job.hold", "from B");
    c.minion_with(&url, "B", router, b.config(Some(fp.clone())), fast())
        .await;
    // A job for B, held in B's handler while A tries to answer it.
    let t0 = unix_ms();
    let h = c.handle.clone();
    let job = tokio::spawn(async move { h.publish("B", "job.hold", Bytes::new(), T).await });
    gate.started(1).await;
    let t1 = unix_ms();

    let client = Client::connect(&url, a.config(Some(fp)))
        .await
        .expect("A connects");
    let hello = Hello { id: "B".into() };
    let e = client.call_value::<_, Welcome>(job::HELLO, &hello).await;
    not_minion(e.expect_err("hello as B"), "B");
    let ready = Ready {
        id: "B".into(),
        token: "00".into(),
    };
    let e = client.call_value::<_, ()>(job::READY, &ready).await;
    not_minion(e.expect_err("ready as B"), "B");
    // Job ids are the publish time in µs: every id the job can have.
    for ms in t0..=t1 {
        let forged = Return {
            jid: (ms * 1000).to_string(),
            id: "B".into(),
            result: MinionResult {
                ok: false,
                body: ByteBuf::from(b"forged".to_vec()),
            },
        };
        let e = client.call_value::<_, ()>(job::RETURN, &forged).await;
        not_minion(e.expect_err("return as B"), "B");
    }
    // A's own key, claiming B's id in the handshake itself.
    let cfg = a.config_as(b"B", Some(pki.master_fingerprint()));
    let err = refused_call(&url, cfg, "test.ping").await;
    assert!(
        matches!(err, Error::Wire(WireError::PeerAlert(3))),
        "{err:?}"
    );
    let state = pki.registry().state("B", &b.keys.public());
    assert_eq!(state.expect("state"), KeyState::Accepted, "B's key");

    gate.release(1);
    let report = job.await.expect("task").expect("publish");
    assert!(report.all_ok(), "{report:?}");
    let body: String = rmp_serde::from_slice(&report.returns["B"].body).expect("decode");
    assert_eq!(body, "from B", "B's own return, not the forgery");
    // B is still registered, over its own connection, and still served.
    assert_eq!(c.handle.minions(), ["B"]);
    gate.release(1);
    let again = c.handle.publish("B", "job.hold", Bytes::new(), T).await;
    assert!(again.expect("publish").all_ok());
    drop(client);
    c.stop().await;
}

/// The minion's pinned master key, as written on first contact.
fn pin_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join(MASTER_PIN_FILE)).expect("pin written")
}

fn is_pin_mismatch(e: &Error) -> bool {
    matches!(e, Error::NotAuthorized(m) if m.contains("fingerprint") && m.contains("refusing to connect"))
}

pub async fn man_in_the_middle_is_refused(scheme: &str) {
    let pki = Pki::new("22935-mitm");
    let c = master(&pki, scheme, builtins(), false).await;
    let url = c.url(scheme);
    let m = pki.minion("m1");
    pki.accept(&m);
    // First contact with the real master pins its key (trust on first use).
    let client = Client::connect(&url, m.config(None))
        .await
        .expect("first contact");
    let _: bool = client.call_value("test.ping", &()).await.expect("ping");
    drop(client);
    let master_pub = KeyPair::load(&pki.master_dir(), MASTER_NAME).expect("master key");
    assert_eq!(pin_of(&m.dir).trim(), master_pub.public().to_hex());

    // A relay that completes its own handshakes on both sides.
    let mitm = Mitm::start(&url, KeyPair::generate().expect("key")).await;
    let err = Client::connect(&mitm.url, m.config(None))
        .await
        .err()
        .expect("connecting through the relay must fail");
    assert!(is_pin_mismatch(&err), "{err:?}");
    // The minion itself: refused, it keeps retrying, never ready.
    let minion = Minion::new(&mitm.url, "m1", builtins(), m.config(None), fast()).expect("minion");
    let running = spawn_minion(minion);
    mitm.refused(3).await;
    assert!(!*running.ready.borrow(), "registered through the relay");
    assert_eq!(
        mitm.completed(),
        0,
        "the minion sent its key and id to the relay"
    );
    assert!(
        mitm.upstream() >= 1,
        "the relay never reached the real master"
    );
    assert_eq!(pin_of(&m.dir).trim(), master_pub.public().to_hex());
    running.stop().await;
    assert!(c.handle.minions().is_empty());
    c.stop().await;
}

pub async fn impersonated_master_is_refused(scheme: &str) {
    let pki = Pki::new("22935-real");
    let c = master(&pki, scheme, builtins(), false).await;
    let m = pki.minion("m1");
    pki.accept(&m);
    let client = Client::connect(&c.url(scheme), m.config(None))
        .await
        .expect("first contact");
    let _: bool = client.call_value("test.ping", &()).await.expect("ping");
    drop(client);
    let pinned = pin_of(&m.dir);

    // Another master, its own key, at a new address; it would accept anyone.
    let fake_pki = Pki::new("22935-fake");
    let fake = master(&fake_pki, scheme, builtins(), true).await;
    let fake_url = fake.url(scheme);
    let err = Client::connect(&fake_url, m.config(None))
        .await
        .err()
        .expect("connecting to the impersonator must fail");
    assert!(is_pin_mismatch(&err), "{err:?}");
    // The minion against it (through a counting relay): refused, retrying.
    let relay = Relay::start(&fake_url, forward_all()).await;
    let minion = Minion::new(&relay.url, "m1", builtins(), m.config(None), fast()).expect("minion");
    let running = spawn_minion(minion);
    relay.ended(2).await;
    assert!(!*running.ready.borrow(), "registered with the impersonator");
    assert_eq!(pin_of(&m.dir), pinned, "the pin was replaced");
    running.stop().await;
    // The impersonator never learned the minion's key or id.
    assert!(fake_pki.registry().list().expect("list").is_empty());
    assert!(fake.handle.minions().is_empty());
    fake.stop().await;
    c.stop().await;
}

pub async fn unaccepted_minion_is_no_target(scheme: &str) {
    let pki = Pki::new("22941");
    let (count_a, count_p) = (Counter::default(), Counter::default());
    let mut c = master(&pki, scheme, Router::new(), false).await;
    let url = c.url(scheme);
    let fp = pki.master_fingerprint();
    let a1 = pki.minion("a1");
    pki.accept(&a1);
    let router = count_a.route(builtins(), "job.count");
    c.minion_with(&url, "a1", router, a1.config(Some(fp.clone())), fast())
        .await;
    // p1 tries to connect: its key is filed as pending and it is refused.
    let p1 = pki.minion("p1");
    let err = match Client::connect(&url, p1.config(Some(fp.clone()))).await {
        Err(e) => e,
        Ok(client) => client
            .call("job.count", Bytes::new())
            .await
            .expect_err("pending"),
    };
    assert!(
        matches!(err, Error::Wire(WireError::PeerAlert(3))),
        "{err:?}"
    );
    let state = pki.registry().state("p1", &p1.keys.public());
    assert_eq!(state.expect("state"), KeyState::Pending);
    // The real minion p1 keeps trying meanwhile.
    let router = count_p.route(builtins(), "job.count");
    let minion = Minion::new(&url, "p1", router, p1.config(Some(fp)), fast()).expect("minion");
    let mut running = spawn_minion(minion);

    for target in ["p1", "p*", "p1,p2"] {
        let e = c.handle.publish(target, "job.count", Bytes::new(), T).await;
        let e = e.expect_err(target);
        assert!(e.to_string().contains("matches no connected minion"), "{e}");
    }
    let all = c.handle.publish("*", "job.count", Bytes::new(), T).await;
    let all = all.expect("publish *");
    assert_eq!(all.returns.keys().collect::<Vec<_>>(), ["a1"], "{all:?}");
    assert!(all.missing.is_empty(), "{all:?}");
    assert_eq!((count_a.get(), count_p.get()), (1, 0));
    assert!(!*running.ready.borrow());

    // Accepted, the same minion is a target (the counter counts).
    pki.registry().accept("p1").expect("accept p1");
    guard("p1 ready", running.ready.wait_for(|r| *r))
        .await
        .expect("ready");
    guard("two minions", c.handle.wait_for_minions(2)).await;
    let r = c.handle.publish("p*", "job.count", Bytes::new(), T).await;
    assert!(r.expect("publish p*").all_ok());
    assert_eq!(count_p.get(), 1);
    running.stop().await;
    c.stop().await;
}
