//! PUB/SUB over real loopback sockets: topic filtering, size limits in both
//! directions, bad shapes, reconnection after the publisher restarts, and
//! order under load.
//!
//! No test measures time. Every `timeout` is either a hang guard (it turns
//! "waits forever" into a failure) or the pace of a probe retry loop: PUB
//! drops what it publishes before a subscription reaches it (ZeroMQ's "slow
//! joiner"), so [`sync`] re-publishes a numbered probe on a topic until
//! the subscriber sees one. Probes stay recognisable by their payload, and
//! every read after a sync skips the stale ones.
use bytes::Bytes;
use sealrpc_zmq::{ZmqConfig, ZmqError, ZmqPublisher, ZmqSubscriber};
use std::future::Future;
use std::time::Duration;
use zeromq::{Socket, SocketSend, ZmqMessage};

// ---------------------------------------------------------------- helpers

/// Turns "waits forever" into a failure; never reached when correct.
const HANG_GUARD: Duration = Duration::from_secs(60);
/// How long a probe is waited for before the next is published (pace only).
const PROBE_PACE: Duration = Duration::from_millis(20);
const PROBE: &[u8] = b"probe:";

async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

fn cfg(max_frame: usize, queue: usize) -> ZmqConfig {
    ZmqConfig {
        max_frame,
        queue,
        ..ZmqConfig::default()
    }
}

async fn publisher(c: ZmqConfig) -> ZmqPublisher {
    ZmqPublisher::bind("tcp://127.0.0.1:0", c)
        .await
        .expect("bind")
}

async fn subscriber(p: &ZmqPublisher, topics: &[&str], c: ZmqConfig) -> ZmqSubscriber {
    guard(
        "connect",
        ZmqSubscriber::connect(&p.local_endpoint(), topics, c),
    )
    .await
    .expect("connect")
}

fn is_probe(item: &Result<(Bytes, bytes::BytesMut), ZmqError>) -> bool {
    matches!(item, Ok((_, payload)) if payload.starts_with(PROBE))
}

/// The next result that is not a probe.
async fn next_item(s: &mut ZmqSubscriber) -> Result<(Bytes, bytes::BytesMut), ZmqError> {
    loop {
        let item = guard("recv", s.recv()).await;
        if !is_probe(&item) {
            return item;
        }
    }
}

/// The next message that is not a probe, as `(topic, payload)` text.
async fn next(s: &mut ZmqSubscriber) -> (String, String) {
    let (topic, payload) = next_item(s).await.expect("a message");
    (
        String::from_utf8_lossy(&topic).into_owned(),
        String::from_utf8_lossy(&payload).into_owned(),
    )
}

fn msg(topic: &str, payload: &str) -> (String, String) {
    (topic.to_owned(), payload.to_owned())
}

/// Returns once `s` received a probe published on `topic`: the publisher
/// then has `s`'s subscription covering `topic`.
async fn sync(p: &ZmqPublisher, s: &mut ZmqSubscriber, topic: &str) {
    guard("subscription", async {
        for n in 0u64.. {
            let probe = Bytes::from(format!("probe:{n}"));
            p.publish(topic.as_bytes(), probe).await.expect("probe");
            if saw_probe(s, topic).await {
                return;
            }
        }
    })
    .await;
}

/// Whether a probe on `topic` arrives within one pace. Stale probes on
/// other topics are skipped; anything else is a test failure.
async fn saw_probe(s: &mut ZmqSubscriber, topic: &str) -> bool {
    loop {
        match tokio::time::timeout(PROBE_PACE, s.recv()).await {
            Err(_) => return false,
            Ok(Ok((t, payload))) if payload.starts_with(PROBE) => {
                if t == topic.as_bytes() {
                    return true;
                }
            }
            Ok(other) => panic!("waiting for a probe on {topic:?}, got {other:?}"),
        }
    }
}

/// The same as [`sync`], through a raw zeromq PUB.
async fn sync_raw(p: &mut zeromq::PubSocket, s: &mut ZmqSubscriber, topic: &str) {
    guard("subscription", async {
        for n in 0u64.. {
            let mut m = ZmqMessage::from(Bytes::copy_from_slice(topic.as_bytes()));
            m.push_back(Bytes::from(format!("probe:{n}")));
            p.send(m).await.expect("probe");
            if saw_probe(s, topic).await {
                return;
            }
        }
    })
    .await;
}

/// Compile-time check: the publisher is shareable, every future is `Send`.
#[allow(dead_code)]
fn types_are_shareable(p: ZmqPublisher, mut s: ZmqSubscriber) {
    fn send<T: Send>(_: T) {}
    fn sync_send<T: Send + Sync + Clone>(_: &T) {}
    sync_send(&p);
    send(ZmqPublisher::bind(
        "tcp://127.0.0.1:0",
        ZmqConfig::default(),
    ));
    send(ZmqSubscriber::connect(
        "tcp://127.0.0.1:1",
        &[],
        ZmqConfig::default(),
    ));
    send(p.publish(b"t", Bytes::new()));
    send(s.recv());
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn local_endpoint_has_the_real_port() {
    let p = publisher(ZmqConfig::default()).await;
    let port: u16 = p
        .local_endpoint()
        .strip_prefix("tcp://127.0.0.1:")
        .expect("tcp://127.0.0.1:PORT")
        .parse()
        .expect("a port");
    assert_ne!(port, 0);
}

#[tokio::test]
async fn topics_filter_by_terminated_prefix() {
    let p = publisher(ZmqConfig::default()).await;
    let mut a = subscriber(&p, &["m:a\0", "*\0"], ZmqConfig::default()).await;
    let mut b = subscriber(&p, &["m:b\0", "*\0"], ZmqConfig::default()).await;
    // Unterminated: shows why topics must be terminated.
    let mut loose = subscriber(&p, &["m:a"], ZmqConfig::default()).await;
    sync(&p, &mut a, "m:a\0").await;
    sync(&p, &mut a, "*\0").await;
    sync(&p, &mut b, "m:b\0").await;
    sync(&p, &mut b, "*\0").await;
    sync(&p, &mut loose, "m:a\0").await;

    // "*\0" after each message is a fence: one connection keeps order, so
    // a subscriber whose next message is the fence did not get the one
    // before it.
    let publish = |topic: &'static str, payload: &'static str| {
        let p = p.clone();
        async move {
            p.publish(topic.as_bytes(), Bytes::from_static(payload.as_bytes()))
                .await
                .expect("publish");
        }
    };
    publish("m:a\0", "to a").await;
    publish("*\0", "fence 1").await;
    publish("m:ab\0", "to ab").await;
    publish("m:b\0", "to b").await;
    publish("*\0", "fence 2").await;
    publish("m:a\0", "to a again").await;

    assert_eq!(next(&mut a).await, msg("m:a\0", "to a"));
    assert_eq!(next(&mut a).await, msg("*\0", "fence 1"));
    // "m:a\0" is not a prefix of "m:ab\0".
    assert_eq!(next(&mut a).await, msg("*\0", "fence 2"));
    assert_eq!(next(&mut a).await, msg("m:a\0", "to a again"));

    assert_eq!(next(&mut b).await, msg("*\0", "fence 1"));
    assert_eq!(next(&mut b).await, msg("m:b\0", "to b"));
    assert_eq!(next(&mut b).await, msg("*\0", "fence 2"));

    // "m:a" is a prefix of "m:ab\0": the confusion terminators prevent.
    assert_eq!(next(&mut loose).await, msg("m:a\0", "to a"));
    assert_eq!(next(&mut loose).await, msg("m:ab\0", "to ab"));
    assert_eq!(next(&mut loose).await, msg("m:a\0", "to a again"));

    // And b never saw "to a again": its fence comes after it.
    publish("*\0", "fence 3").await;
    assert_eq!(next(&mut b).await, msg("*\0", "fence 3"));
}

#[tokio::test]
async fn oversize_publish_is_refused_and_the_publisher_still_works() {
    let p = publisher(cfg(16, 4)).await;
    let mut s = subscriber(&p, &["t\0"], cfg(16, 4)).await;
    sync(&p, &mut s, "t\0").await;

    let err = p
        .publish(b"t\0", Bytes::from(vec![1u8; 17]))
        .await
        .expect_err("17 bytes over a 16-byte limit");
    assert!(
        matches!(err, ZmqError::TooLarge { len: 17, max: 16 }),
        "{err:?}"
    );
    let err = p
        .publish(&[b't'; 17], Bytes::from_static(b"x"))
        .await
        .expect_err("a 17-byte topic");
    assert!(
        matches!(err, ZmqError::TooLarge { len: 17, max: 16 }),
        "{err:?}"
    );

    let full = "0123456789abcdef";
    p.publish(b"t\0", Bytes::from_static(full.as_bytes()))
        .await
        .expect("exactly max_frame");
    p.publish(b"t\0", Bytes::new()).await.expect("empty");
    assert_eq!(next(&mut s).await, msg("t\0", full));
    assert_eq!(next(&mut s).await, msg("t\0", ""));
}

#[tokio::test]
async fn oversize_inbound_is_skipped_with_an_error_and_the_subscriber_goes_on() {
    let p = publisher(cfg(1 << 20, 16)).await;
    let mut s = subscriber(&p, &["t\0"], cfg(1024, 16)).await;
    sync(&p, &mut s, "t\0").await;

    p.publish(b"t\0", Bytes::from(vec![7u8; 1025]))
        .await
        .expect("within the publisher's limit");
    p.publish(b"t\0", Bytes::from_static(b"after"))
        .await
        .expect("publish");
    let err = next_item(&mut s).await.expect_err("over the limit");
    assert!(
        matches!(
            err,
            ZmqError::TooLarge {
                len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(next(&mut s).await, msg("t\0", "after"));

    // A long topic counts as well.
    let topic = format!("t\0{}", "x".repeat(1100));
    p.publish(topic.as_bytes(), Bytes::from_static(b"x"))
        .await
        .expect("publish");
    p.publish(b"t\0", Bytes::from_static(b"after topic"))
        .await
        .expect("publish");
    let err = next_item(&mut s).await.expect_err("topic over the limit");
    assert!(
        matches!(
            err,
            ZmqError::TooLarge {
                len: 1102,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(next(&mut s).await, msg("t\0", "after topic"));
}

#[tokio::test]
async fn wrong_shape_is_skipped_with_a_protocol_error() {
    let mut p = zeromq::PubSocket::new();
    let ep = p.bind("tcp://127.0.0.1:0").await.expect("bind").to_string();
    let mut s = guard(
        "connect",
        ZmqSubscriber::connect(&ep, &["s\0"], ZmqConfig::default()),
    )
    .await
    .expect("connect");
    sync_raw(&mut p, &mut s, "s\0").await;

    // One frame (PUB filters on the first frame, which starts with "s\0").
    p.send(ZmqMessage::from(Bytes::from_static(b"s\0alone")))
        .await
        .expect("send");
    let mut three = ZmqMessage::from(Bytes::from_static(b"s\0"));
    three.push_back(Bytes::from_static(b"one"));
    three.push_back(Bytes::from_static(b"two"));
    p.send(three).await.expect("send");
    let mut good = ZmqMessage::from(Bytes::from_static(b"s\0"));
    good.push_back(Bytes::from_static(b"fine"));
    p.send(good).await.expect("send");

    for parts in [1, 3] {
        match next_item(&mut s).await {
            Err(ZmqError::Protocol(text)) => {
                assert!(text.contains(&format!("got {parts} parts")), "{text}")
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
    assert_eq!(next(&mut s).await, msg("s\0", "fine"));
}

#[tokio::test]
async fn subscriber_reconnects_after_the_publisher_restarts_on_the_same_port() {
    let p = publisher(ZmqConfig::default()).await;
    let ep = p.local_endpoint();
    let mut s = subscriber(&p, &["r\0"], ZmqConfig::default()).await;
    sync(&p, &mut s, "r\0").await;
    p.publish(b"r\0", Bytes::from_static(b"before"))
        .await
        .expect("publish");
    assert_eq!(next(&mut s).await, msg("r\0", "before"));

    // Dropping the last handle stops the task, which drops the socket and
    // its listener; that happens on another task, so the port may still
    // be taken for a moment.
    drop(p);
    let p = guard("rebind", async {
        loop {
            match ZmqPublisher::bind(&ep, ZmqConfig::default()).await {
                Ok(p) => return p,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert_eq!(p.local_endpoint(), ep);

    // zeromq's SUB reconnects and re-sends "r\0" on its own.
    sync(&p, &mut s, "r\0").await;
    p.publish(b"r\0", Bytes::from_static(b"after"))
        .await
        .expect("publish");
    assert_eq!(next(&mut s).await, msg("r\0", "after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_messages_from_cloned_publishers_arrive_in_order() {
    const PRODUCERS: u32 = 4;
    const EACH: u32 = 5_000;
    // Small queues on both sides: publish and the subscriber's task wait.
    let p = publisher(cfg(1024, 4)).await;
    let mut s = subscriber(&p, &["n\0"], cfg(1024, 4)).await;
    sync(&p, &mut s, "n\0").await;

    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|k| {
            let p = p.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let payload = Bytes::from(format!("{k}:{i}"));
                    p.publish(b"n\0", payload).await.expect("publish");
                }
            })
        })
        .collect();

    // Each producer's messages arrive in its order, none lost or doubled.
    let mut expected = vec![0u32; PRODUCERS as usize];
    for _ in 0..PRODUCERS * EACH {
        let (topic, payload) = next(&mut s).await;
        assert_eq!(topic, "n\0");
        let (k, i) = payload.split_once(':').expect("k:i");
        let (k, i): (usize, u32) = (k.parse().expect("k"), i.parse().expect("i"));
        assert_eq!(i, expected[k], "producer {k} out of order");
        expected[k] += 1;
    }
    for t in tasks {
        guard("producer", t).await.expect("producer task");
    }
    assert!(expected.iter().all(|&n| n == EACH));
}
