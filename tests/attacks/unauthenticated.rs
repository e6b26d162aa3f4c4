//! Before a peer is authenticated and accepted nothing but the handshake
//! runs (CVE-2020-11651); an id that could name a path never reaches the
//! file system (CVE-2020-11652); another protocol version is refused, never
//! downgraded to (CVE-2025-62349).
use crate::support::attack::{base_config, listen_url, master, refused_call, Counter, Pki};
use crate::support::cluster;
use crate::support::raw::{seal_request, Raw, Session, RAW_MAX};
use bytes::Bytes;
use sealrpc::channel::{random_token, Client, Router};
use sealrpc::error::{HandshakeError, WireError};
use sealrpc::job::{self, Hello, JobReport, PublishRequest, Welcome};
use sealrpc::keys::{Key, Keyring};
use sealrpc::pki::KeyState;
use sealrpc::wire::envelope::unix_ms;
use sealrpc::wire::handshake::{Initiator, Responder};
use sealrpc::wire::{Kind, Opener, Sealer, SessionRegistry};
use sealrpc::Error;
use std::sync::Arc;

/// The alert a master sends when it refuses a handshake (`NotAuthorized`).
const HANDSHAKE_REFUSED: u8 = 3;

fn is_handshake_alert(e: &Error) -> bool {
    matches!(e, Error::Wire(WireError::PeerAlert(HANDSHAKE_REFUSED)))
}

pub async fn unauthenticated_peer_runs_nothing(scheme: &str) {
    let pki = Pki::new("11651");
    let count = Counter::default();
    let c = master(&pki, scheme, count.route(Router::new(), "count.me"), false).await;
    let url = c.url(scheme);

    // (a) A raw connection whose first frame is a sealed request (under a
    // key of the attacker's choosing) instead of a handshake.
    let mut raw = Raw::connect(&url).await;
    let mut sealer = Sealer::new(Key::generate(), random_token());
    raw.send(&seal_request(&mut sealer, 1, "count.me", b"").expect("seal"))
        .await;
    raw.ending().await.assert_alert(HANDSHAKE_REFUSED);

    // (b) A client in shared-key mode (no identity, no handshake).
    let err = refused_call(&url, base_config(), "count.me").await;
    assert!(is_handshake_alert(&err), "{err:?}");

    // (c) A peer that completes the handshake with a key the master has not
    // accepted, and sends a request right behind its frame 3.
    let stranger = pki.minion("stranger");
    let mut raw = Raw::connect(&url).await;
    let (done, _) = raw.handshake(&stranger.keys, b"stranger").await;
    raw.send(&Session::new(&done).request("count.me", b""))
        .await;
    raw.ending().await.assert_alert(HANDSHAKE_REFUSED);
    let state = pki.registry().state("stranger", &stranger.keys.public());
    assert_eq!(state.expect("state"), KeyState::Pending);

    assert_eq!(count.get(), 0, "a handler ran for an unauthenticated peer");
    // Control: once accepted, the same method runs (the counter counts).
    let ok = pki.minion("ok1");
    pki.accept(&ok);
    let client = Client::connect(&url, ok.config(Some(pki.master_fingerprint())))
        .await
        .expect("accepted minion connects");
    client
        .call("count.me", Bytes::new())
        .await
        .expect("accepted call");
    assert_eq!(count.get(), 1);
    // Authenticated is not all-powerful: a minion may not publish.
    let request = PublishRequest {
        target: "*".into(),
        method: "count.me".into(),
        body: Default::default(),
        timeout_ms: 1000,
    };
    let err = client
        .call_value::<_, JobReport>(job::PUBLISH, &request)
        .await
        .expect_err("a minion publishing");
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
    drop(client);
    c.stop().await;
}

pub async fn ids_that_are_paths_are_refused(scheme: &str) {
    let pki = Pki::new("11652");
    // Auto-accept: the worst case, where a new id is written at once.
    let c = master(
        &pki,
        scheme,
        sealrpc::builtin::register(Router::new()),
        true,
    )
    .await;
    let url = c.url(scheme);
    let fp = pki.master_fingerprint();
    let evil = pki.minion("evil");
    let bad = [
        "../../etc/x",
        "a/b",
        "a\0b",
        "..",
        "a\\b",
        "/tmp/x",
        "minions/../x",
    ];
    let before = pki.tree();
    for id in bad {
        let err = refused_call(
            &url,
            evil.config_as(id.as_bytes(), Some(fp.clone())),
            "test.ping",
        )
        .await;
        assert!(is_handshake_alert(&err), "{id:?}: {err:?}");
    }
    // Not UTF-8 at all.
    let err = refused_call(
        &url,
        evil.config_as(b"\xff/..", Some(fp.clone())),
        "test.ping",
    )
    .await;
    assert!(is_handshake_alert(&err), "{err:?}");
    assert_eq!(
        pki.tree(),
        before,
        "files appeared under the master's PKI dir"
    );

    // An accepted minion cannot register such an id either.
    let good = pki.minion("good");
    let client = Client::connect(&url, good.config(Some(fp)))
        .await
        .expect("connect");
    for id in bad {
        let err = client
            .call_value::<_, Welcome>(job::HELLO, &Hello { id: id.into() })
            .await
            .expect_err(id);
        assert!(err.to_string().contains("invalid minion id"), "{err}");
    }
    assert!(c.handle.minions().is_empty());
    drop(client);
    c.stop().await;
}

pub async fn other_versions_are_refused(scheme: &str) {
    let pki = Pki::new("62349");
    let count = Counter::default();
    let c = master(&pki, scheme, count.route(Router::new(), "count.me"), false).await;
    let url = c.url(scheme);
    let m = pki.minion("v1");
    pki.accept(&m);
    let secret = m.keys.secret_bytes();
    for v in [0u8, 2] {
        // Frame 1 (minion → master) with version v.
        let (_, mut f1) = Initiator::start(secret).expect("start");
        f1[2] = v;
        let e = Responder::respond(&[7; 32], &f1, &[]).expect_err("frame 1");
        assert_eq!(e, HandshakeError::UnsupportedVersion(v));
        let mut raw = Raw::connect(&url).await;
        raw.send(&f1).await;
        raw.ending().await.assert_alert(HANDSHAKE_REFUSED);

        // Frame 3 with version v, after a good frame 1.
        let mut raw = Raw::connect(&url).await;
        let (init, f1) = Initiator::start(secret).expect("start");
        raw.send(&f1).await;
        let f2 = raw.recv().await.expect("frame 2");
        let (mut f3, _) = init.finish(&f2, b"v1").expect("finish");
        f3[2] = v;
        raw.send(&f3).await;
        raw.ending().await.assert_alert(HANDSHAKE_REFUSED);

        // Frame 2 (a master downgrading its minion), sans-IO.
        let (init, f1) = Initiator::start(secret).expect("start");
        let (_, mut f2) = Responder::respond(&[7; 32], &f1, &[]).expect("respond");
        f2[2] = v;
        let e = init.finish(&f2, b"v1").expect_err("frame 2");
        assert_eq!(e, HandshakeError::UnsupportedVersion(v));

        // An envelope with version v after a completed handshake.
        let mut raw = Raw::connect(&url).await;
        let (done, _) = raw.handshake(&m.keys, b"v1").await;
        let mut env = Session::new(&done).request("count.me", b"");
        env[2] = v;
        // What the master's opener says about it (its receive key is our send key).
        let keyring = Arc::new(Keyring::single(Key::from_bytes(*done.send_key)));
        let registry = Arc::new(SessionRegistry::new(60_000, 8));
        let mut opener = Opener::new(keyring, registry, Kind::Request, 60_000, RAW_MAX);
        let e = opener
            .open(&mut env.clone(), unix_ms())
            .expect_err("envelope");
        assert_eq!(e, WireError::UnsupportedVersion(v));
        raw.send(&env).await;
        // Refused (1) or malformed (2): the wire format does not say which
        // an unknown version is; either way the connection ends.
        let end = raw.ending().await;
        assert_eq!(end.frames.len(), 1, "{end:?}");
        assert!(matches!(end.alert(), Some(1 | 2)), "{end:?}");
    }
    assert_eq!(count.get(), 0, "a handler ran for another version");
    // Control: version 1 on the same terms runs.
    let mut raw = Raw::connect(&url).await;
    let (done, _) = raw.handshake(&m.keys, b"v1").await;
    let mut session = Session::new(&done);
    raw.send(&session.request("count.me", b"")).await;
    let reply = raw.recv().await.expect("reply");
    assert_eq!(session.open_reply(&reply).expect("opens").1, 0);
    assert_eq!(count.get(), 1);
    drop(raw);
    c.stop().await;

    // Nor does a minion with an identity fall back to the older shared-key
    // protocol when a master (here one without identities) does not answer
    // its handshake.
    let plain = Counter::default();
    let url = listen_url(scheme);
    let router = plain.route(Router::new(), "count.me");
    let shared = cluster::master(&[&url], router, base_config()).await;
    let cfg = m.config(Some(pki.master_fingerprint()));
    let err = refused_call(&shared.url(scheme), cfg, "count.me").await;
    assert!(
        matches!(err, Error::Handshake(HandshakeError::PeerAlert(_))),
        "{err:?}"
    );
    assert_eq!(plain.get(), 0);
    shared.stop().await;
}
