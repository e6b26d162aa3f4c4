//! Replays (CVE-2022-22936, CVE-2024-38823): a request, a reply or a
//! publish recorded off the wire and sent again, on its own connection or
//! on another. Levels, honestly:
//! - requests: raw connections speaking the protocol by hand (a manual
//!   Noise handshake, envelopes sealed with the handshake's keys), against
//!   the real master; the master's own refusal is observed (alert, end of
//!   connection, handler counter);
//! - replies: the same raw sessions (whose opener is configured as
//!   `channel/connection.rs` configures the client's), and the real
//!   `Client` behind a relay that replays a reply frame;
//! - publishes on TCP and WebSocket: a real `Minion` (and a real `Client`
//!   receiving publishes) behind a relay that duplicates the publish frame;
//!   on ZeroMQ see `replay_zmq.rs`.
use crate::support::attack::{guard, master, Counter, Pki, T};
use crate::support::raw::{Raw, Session};
use crate::support::relay::{Action, Dir, Hook, Relay};
use bytes::Bytes;
use sealrpc::channel::{Client, Router};
use sealrpc::error::WireError;
use sealrpc::job::{self, Hello, MinionResult, Return, Welcome};
use sealrpc::Error;
use serde_bytes::ByteBuf;
use std::sync::{Arc, Mutex};

/// The kind byte of a sealed envelope (not of a handshake frame or alert).
fn kind(frame: &[u8]) -> Option<u8> {
    (frame.len() >= 56 && frame[..3] == [0x53, 0x52, 0x01]).then(|| frame[3])
}

pub async fn replayed_requests_and_replies_are_refused(scheme: &str) {
    let pki = Pki::new("22936");
    let count = Counter::default();
    let c = master(&pki, scheme, count.route(Router::new(), "count.me"), false).await;
    let url = c.url(scheme);
    let m = pki.minion("r1");
    pki.accept(&m);

    let mut c1 = Raw::connect(&url).await;
    let (done1, [f1, f3]) = c1.handshake(&m.keys, b"r1").await;
    let mut s1 = Session::new(&done1);
    let request = s1.request("count.me", b"");
    c1.send(&request).await;
    let reply = c1.recv().await.expect("reply");
    let (id, status, _) = s1.open_reply(&reply).expect("the reply opens");
    assert_eq!((id, status, count.get()), (1, 0, 1));
    // (c) The reply again on its own connection: the window refuses it.
    assert_eq!(s1.open_reply(&reply), Err(WireError::Replayed { seq: 0 }));
    // (a) The request again on its own connection: refused, connection closed.
    c1.send(&request).await;
    c1.ending().await.assert_alert(1);
    assert_eq!(count.get(), 1, "the replayed request ran");

    // (b) The recorded request on a new connection (its own handshake).
    let mut c2 = Raw::connect(&url).await;
    let (done2, _) = c2.handshake(&m.keys, b"r1").await;
    let mut s2 = Session::new(&done2);
    // (c) Connection 1's reply does not open on connection 2.
    assert!(matches!(
        s2.open_reply(&reply),
        Err(WireError::UnknownKey(_))
    ));
    c2.send(&request).await;
    c2.ending().await.assert_alert(1);
    // (b) The recorded handshake itself, replayed: frame 1, then frame 3
    // (the master's frame 2 is fresh, so the old frame 3 no longer fits):
    // refused before any request could follow.
    let mut c3 = Raw::connect(&url).await;
    c3.send(&f1).await;
    c3.recv().await.expect("a fresh frame 2");
    c3.send(&f3).await;
    c3.ending().await.assert_alert(3);
    assert_eq!(count.get(), 1, "a replayed request ran");
    // Control: a new request on a new session runs.
    let mut c4 = Raw::connect(&url).await;
    let (done4, _) = c4.handshake(&m.keys, b"r1").await;
    let mut s4 = Session::new(&done4);
    c4.send(&s4.request("count.me", b"")).await;
    let reply = c4.recv().await.expect("reply");
    assert_eq!(s4.open_reply(&reply).expect("opens").1, 0);
    assert_eq!(count.get(), 2);
    drop(c4);
    c.stop().await;
}

/// Records the first reply frame going down any connection; every later
/// reply (on that connection or another) is replaced by it.
fn replay_first_reply() -> Hook {
    let recorded: Arc<Mutex<Option<Bytes>>> = Arc::default();
    Arc::new(move |_, dir, frame| {
        if dir != Dir::Down || kind(frame) != Some(2) {
            return Action::Forward;
        }
        let mut r = recorded.lock().expect("lock");
        match &*r {
            None => {
                *r = Some(Bytes::copy_from_slice(frame));
                Action::Forward
            }
            Some(reply) => Action::Replace(vec![reply.clone()]),
        }
    })
}

pub async fn replayed_replies_fail_the_call(scheme: &str) {
    let pki = Pki::new("38823");
    let count = Counter::default();
    let c = master(&pki, scheme, count.route(Router::new(), "count.me"), false).await;
    let relay = Relay::start(&c.url(scheme), replay_first_reply()).await;
    let client = Client::connect(&relay.url, pki.admin())
        .await
        .expect("connect");
    let _: bool = client
        .call_value("count.me", &())
        .await
        .expect("first call");
    // The second call's reply is replaced by the first: refused by the
    // window (without it, the stale reply would be dropped as unmatched).
    let err = client
        .call("count.me", Bytes::new())
        .await
        .expect_err("replayed reply");
    assert!(
        matches!(err, Error::Wire(WireError::Replayed { .. })),
        "{err:?}"
    );
    // On another connection the recorded reply is under another key.
    let other = Client::connect(&relay.url, pki.admin())
        .await
        .expect("connect");
    let err = other
        .call("count.me", Bytes::new())
        .await
        .expect_err("foreign reply");
    assert!(
        matches!(err, Error::Wire(WireError::UnknownKey(_))),
        "{err:?}"
    );
    drop((client, other));
    c.stop().await;
}

/// What [`duplicate_first_publish`] has seen: the first publish frame and
/// its connection, and whether the duplicate was sent.
#[derive(Default)]
struct FirstPublish {
    seen: Option<(usize, Bytes)>,
    sent: bool,
}

/// Forwards the first publish frame down its connection, then sends it
/// again in place of the next frame down that connection (the reply to the
/// minion's return): once.
fn duplicate_first_publish() -> Hook {
    let state: Arc<Mutex<FirstPublish>> = Arc::default();
    Arc::new(move |conn, dir, frame| {
        let mut st = state.lock().expect("lock");
        if dir != Dir::Down || st.sent {
            return Action::Forward;
        }
        match &st.seen {
            None if kind(frame) == Some(3) => {
                st.seen = Some((conn, Bytes::copy_from_slice(frame)));
                Action::Forward
            }
            Some((c, publish)) if *c == conn => {
                let publish = publish.clone();
                st.sent = true;
                Action::Replace(vec![publish])
            }
            _ => Action::Forward,
        }
    })
}

pub fn ok_return(jid: &str, id: &str) -> Return {
    Return {
        jid: jid.to_owned(),
        id: id.to_owned(),
        result: MinionResult {
            ok: true,
            body: ByteBuf::new(),
        },
    }
}

pub async fn replayed_publish_runs_once(scheme: &str) {
    if scheme == "zmq" {
        return crate::replay_zmq::publish_runs_once().await;
    }
    let pki = Pki::new("22936-pub");
    let count = Counter::default();
    let mut c = master(&pki, scheme, Router::new(), false).await;
    let url = c.url(scheme);
    let fp = pki.master_fingerprint();
    let (m1, m2) = (pki.minion("m1"), pki.minion("m2"));
    pki.accept(&m1);
    pki.accept(&m2);

    // A real minion behind a relay that duplicates its first job.
    let relay = Relay::start(&url, duplicate_first_publish()).await;
    let router = count.route(Router::new(), "job.count");
    c.minion_with(
        &relay.url,
        "m1",
        router,
        m1.config(Some(fp.clone())),
        Default::default(),
    )
    .await;
    let report = c.handle.publish("m1", "job.count", Bytes::new(), T).await;
    assert!(report.expect("publish").all_ok());
    // The duplicate ends the minion's connection (its window refuses it)
    // instead of running the job again.
    tokio::select! {
        _ = relay.ended(1) => {}
        _ = count.reached(2) => panic!("the duplicated publish ran the job again"),
    }
    assert_eq!(count.get(), 1);

    // The same through the minion's client, for the typed error.
    let relay = Relay::start(&url, duplicate_first_publish()).await;
    let (client, mut jobs) = Client::connect_with_publishes(&relay.url, m2.config(Some(fp)), 8)
        .await
        .expect("connect");
    let hello = Hello { id: "m2".into() };
    let _: Welcome = client.call_value(job::HELLO, &hello).await.expect("hello");
    let h = c.handle.clone();
    let job = tokio::spawn(async move { h.publish("m2", "job.x", Bytes::new(), T).await });
    let p = guard("the job", jobs.recv()).await.expect("a job");
    let err = client
        .call_value::<_, ()>(job::RETURN, &ok_return(&p.jid, "m2"))
        .await
        .expect_err("the duplicate arrives in place of the reply");
    assert!(
        matches!(err, Error::Wire(WireError::Replayed { .. })),
        "{err:?}"
    );
    assert!(jobs.try_recv().is_err(), "the duplicate was delivered");
    // The return itself went through before its reply was replaced.
    assert!(job.await.expect("task").expect("publish").all_ok());
    drop(client);
    c.stop().await;
}
