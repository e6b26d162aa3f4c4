//! The channel over real TCP: many calls in flight on one connection,
//! concurrent dispatch, deadlines, cancellation, a refused envelope costing
//! only its own connection, and trace context never taken from an envelope
//! that did not authenticate.
mod support;

use bytes::Bytes;
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::{ChannelConfig, Client};
use sealrpc::keys::Key;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_in_flight_on_one_connection_each_get_their_own_reply() {
    let cfg = ChannelConfig::new(Key::generate());
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let calls = (0..1000).map(|i| {
        let client = client.clone();
        async move {
            let reply = client
                .call("test.echo", args_body(&[i.to_string()]).expect("body"))
                .await
                .expect("echo");
            (i, body_json(&reply).expect("json"))
        }
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.len(), 1000);
    for (i, v) in results {
        assert_eq!(
            v,
            serde_json::json!(i),
            "reply {i} matched to its own request"
        );
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_handler_does_not_hold_up_others_on_the_same_connection() {
    let cfg = ChannelConfig::new(Key::generate());
    // No grace: stop() must not wait for the abandoned 30 s sleep.
    let server = support::start_with_grace(support::builtins(), cfg.clone(), Duration::ZERO).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    {
        let slow = client.call("test.sleep", args_body(&["30"]).expect("body"));
        tokio::pin!(slow);
        tokio::select! {
            r = &mut slow => panic!("the 30 s sleep finished first: {r:?}"),
            r = client.call("test.ping", Bytes::new()) => assert_eq!(body_json(&r.expect("ping")).expect("json"), serde_json::json!(true)),
        }
    } // dropping the slow call cancels it on the client: its pending entry is removed
    drop(client);
    server.stop().await;
}

/// The server stops a handler when the caller's deadline passes, while the
/// caller is still connected (so this is the deadline, not a disconnect).
#[tokio::test]
async fn the_server_stops_a_handler_at_the_callers_deadline() {
    let (router, started, dropped) = hanging_router();
    let cfg = ChannelConfig::new(Key::generate());
    let server = support::start(router, cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller
            .call_with_timeout("hang", Bytes::new(), Duration::from_millis(50))
            .await
    });
    started.await.expect("handler started");
    let stopped = tokio::time::timeout(Duration::from_secs(60), dropped).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the handler was stopped at the deadline"
    );
    let err = call.await.expect("join").expect_err("must time out");
    assert!(
        matches!(
            err,
            sealrpc::Error::Timeout { .. } | sealrpc::Error::DeadlineExceeded
        ),
        "{err}"
    );
    // The connection is still good afterwards.
    assert!(client
        .call("test.ping", Bytes::new())
        .await
        .is_err_and(|e| matches!(e, sealrpc::Error::NoSuchMethod(_))));
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_refused_envelope_costs_only_its_own_connection() {
    let key = Key::generate();
    let cfg = ChannelConfig::new(key);
    let server = support::start(support::builtins(), cfg.clone()).await;
    let good = Client::connect(&server.url(), cfg).await.expect("connect");
    let bad = Client::connect(&server.url(), ChannelConfig::new(Key::generate()))
        .await
        .expect("connect");
    let err = bad
        .call("test.ping", Bytes::new())
        .await
        .expect_err("wrong key");
    assert!(
        matches!(
            err,
            sealrpc::Error::Wire(sealrpc::error::WireError::PeerAlert(1))
        ),
        "{err}"
    );
    let again = bad
        .call("test.ping", Bytes::new())
        .await
        .expect_err("connection closed");
    assert!(
        matches!(
            again,
            sealrpc::Error::Wire(sealrpc::error::WireError::PeerAlert(1))
        ),
        "sticky: {again}"
    );
    assert!(
        good.call("test.ping", Bytes::new()).await.is_ok(),
        "others keep being served"
    );
    assert!(matches!(
        good.call("no.such", Bytes::new()).await,
        Err(sealrpc::Error::NoSuchMethod(_))
    ));
    drop((good, bad));
    server.stop().await;
}

#[cfg(feature = "otel")]
#[tokio::test]
async fn context_in_an_envelope_that_fails_authentication_is_never_used() {
    use sealrpc::telemetry::memory::collecting;
    use sealrpc::wire::envelope::unix_ms;
    use sealrpc::wire::load::{self, Carrier, RequestLoad};
    use sealrpc::wire::{Kind, Sealer};
    let (telemetry, collector) = collecting("test");
    let key = Key::generate();
    let cfg = ChannelConfig::new(key.clone()).with_telemetry(Some(telemetry));
    let server = support::start(support::builtins(), cfg.clone()).await;
    // The right key, a request carrying a traceparent, one tag byte flipped:
    // the envelope reaches AES-GCM and fails there.
    let (mut reader, mut writer) = sealrpc_tcp::connect(server.addr, Default::default())
        .await
        .expect("connect");
    let mut sealer = Sealer::new(key, [3; 16]);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = RequestLoad {
        retry: &[],
        id: 1,
        method: "test.ping",
        body: b"",
        deadline_ms: 0,
        trace: Carrier(vec![("traceparent", tp)]),
    };
    let mut env = bytes::BytesMut::new();
    sealer
        .seal(Kind::Request, unix_ms(), 1 << 20, &mut env, |b| {
            load::encode(&req, b)
        })
        .expect("seal");
    let last = env.len() - 1;
    env[last] ^= 0x01;
    writer.send(&env).await.expect("send");
    let alert = reader.recv().await.expect("recv").expect("alert frame");
    assert_eq!(sealrpc::wire::header::parse_alert(&alert), Some(1));
    assert!(
        reader.recv().await.expect("clean close").is_none(),
        "the server closed the connection"
    );
    // A good client works, and its call is the only server span.
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    client.call("test.ping", Bytes::new()).await.expect("ping");
    drop(client);
    server.stop().await;
    let spans = collector.spans();
    let servers = spans
        .iter()
        .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Server);
    assert_eq!(servers.count(), 1);
    assert!(spans
        .iter()
        .all(|s| s.span_context.trace_id().to_string() != "4bf92f3577b34da6a3ce929d0e0e4736"));
}

/// When the caller disconnects, its in-flight handlers are cancelled:
/// nobody is left to receive their replies.
#[tokio::test]
async fn a_disconnected_callers_handlers_are_cancelled() {
    let (router, started_rx, dropped_rx) = hanging_router();
    let cfg = ChannelConfig::new(Key::generate());
    let server = support::start(router, cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let call = tokio::spawn(async move { client.call("hang", Bytes::new()).await });
    started_rx.await.expect("handler started");
    call.abort(); // drops the call and the only client: the connection closes
    let cancelled = tokio::time::timeout(Duration::from_secs(60), dropped_rx).await;
    assert!(
        matches!(cancelled, Ok(Ok(()))),
        "the handler was dropped after the caller went away"
    );
    server.stop().await;
}

/// A reply recorded on one connection must not be accepted on another
/// (replies are bound to their connection's first request session).
#[tokio::test]
async fn a_reply_recorded_on_one_connection_is_refused_on_another() {
    let key = Key::generate();
    let cfg = ChannelConfig::new(key);
    let server = support::start(support::builtins(), cfg.clone()).await;
    let tap = sealrpc::tap::Tap::start(server.addr).await.expect("tap");
    let first = Client::connect(&format!("tcp://{}", tap.addr()), cfg.clone())
        .await
        .expect("connect");
    let ok = first
        .call(
            "test.echo",
            args_body(&["transfer-approved"]).expect("body"),
        )
        .await
        .expect("echo");
    assert_eq!(
        body_json(&ok).expect("json"),
        serde_json::json!("transfer-approved")
    );
    drop(first);
    let recorded = tap.to_client();
    assert!(!recorded.is_empty());

    // A fake master answers any request with the recorded reply bytes.
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_addr = fake.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = fake.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await; // the victim's request
        sock.write_all(&recorded).await.expect("replay");
        let _ = sock.read(&mut buf).await; // hold the connection open
    });
    let victim = Client::connect(&format!("tcp://{fake_addr}"), cfg)
        .await
        .expect("connect");
    let got = victim
        .call("test.echo", args_body(&["transfer-denied"]).expect("body"))
        .await;
    assert!(
        matches!(
            got,
            Err(sealrpc::Error::Wire(
                sealrpc::error::WireError::AuthenticationFailed
            ))
        ),
        "a replayed reply must be refused, got {got:?}"
    );
    server.stop().await;
}

/// A router whose `hang` handler never finishes on its own; the receivers
/// fire when it starts and when it is dropped (cancelled).
fn hanging_router() -> (
    sealrpc::channel::Router,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    struct Dropped(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
    let slots = std::sync::Arc::new(std::sync::Mutex::new(Some((started_tx, dropped_tx))));
    let router = sealrpc::channel::Router::new().route("hang", move |_req| {
        let slot = slots.lock().expect("lock").take();
        async move {
            let Some((started, dropped)) = slot else {
                return Ok(Bytes::new());
            };
            let _guard = Dropped(Some(dropped));
            let _ = started.send(());
            std::future::pending::<Result<Bytes, sealrpc::channel::HandlerError>>().await
        }
    });
    (router, started_rx, dropped_rx)
}

/// Many large calls at once on two worker threads: every one completes, and
/// the outbox's memory bound (a debug assertion on every seal) holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_256_kib_calls_complete_within_the_outbox_bound() {
    let cfg = ChannelConfig::new(Key::generate());
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let big = "x".repeat(256 * 1024);
    let calls = (0..64).map(|_| {
        let (client, big) = (client.clone(), big.clone());
        async move {
            let reply = client
                .call("test.echo", args_body(&[big]).expect("body"))
                .await
                .expect("echo");
            body_json(&reply).expect("json").as_str().map(str::len)
        }
    });
    for len in futures::future::join_all(calls).await {
        assert_eq!(len, Some(256 * 1024));
    }
    drop(client);
    server.stop().await;
}

/// `Duration::MAX` means "as long as it takes", not an overflow panic.
#[tokio::test]
async fn an_unbounded_timeout_is_accepted() {
    let mut cfg = ChannelConfig::new(Key::generate());
    cfg.timeout = Duration::MAX;
    let server = support::start(support::builtins(), cfg.clone()).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    assert!(client.call("test.ping", Bytes::new()).await.is_ok());
    assert!(client
        .call_with_timeout("test.ping", Bytes::new(), Duration::MAX)
        .await
        .is_ok());
    drop(client);
    server.stop().await;
}

/// One server on TCP and WebSocket at once: both serve, and they share one
/// replay registry — an envelope sent over TCP and replayed over WebSocket
/// is refused.
#[tokio::test]
async fn one_server_on_several_transports_shares_its_replay_defence() {
    use sealrpc::wire::envelope::unix_ms;
    use sealrpc::wire::load::{self, Carrier, RequestLoad};
    use sealrpc::wire::{Kind, Sealer};
    let key = Key::generate();
    let cfg = ChannelConfig::new(key.clone());
    let server = sealrpc::channel::Server::bind_all(
        &["tcp://127.0.0.1:0", "ws://127.0.0.1:0/sealrpc"],
        support::builtins(),
        cfg.clone(),
    )
    .await
    .expect("bind");
    let urls = server.local_urls().expect("urls");
    assert!(
        urls[0].starts_with("tcp://") && urls[1].starts_with("ws://"),
        "{urls:?}"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    for url in &urls {
        let client = Client::connect(url, cfg.clone()).await.expect("connect");
        assert!(
            client.call("test.ping", Bytes::new()).await.is_ok(),
            "{url}"
        );
    }
    // One sealed request, sent over TCP, then replayed over WebSocket.
    let mut sealer = Sealer::new(key, [77; 16]);
    let req = RequestLoad {
        retry: &[],
        id: 1,
        method: "test.ping",
        body: b"",
        deadline_ms: 0,
        trace: Carrier::default(),
    };
    let mut env = bytes::BytesMut::new();
    sealer
        .seal(Kind::Request, unix_ms(), 1 << 20, &mut env, |b| {
            load::encode(&req, b)
        })
        .expect("seal");
    let tcp_addr = urls[0].trim_start_matches("tcp://");
    let (mut r, mut w) = sealrpc_tcp::connect(tcp_addr, Default::default())
        .await
        .expect("tcp");
    w.send(&env).await.expect("send");
    let reply = r.recv().await.expect("recv").expect("a reply");
    assert!(
        sealrpc::wire::header::parse_alert(&reply).is_none(),
        "accepted over TCP"
    );
    let (mut wr, mut ww, _) = sealrpc_ws::connect(&urls[1], Default::default())
        .await
        .expect("ws");
    ww.send(env.freeze()).await.expect("send");
    let refused = wr.recv().await.expect("recv").expect("an alert");
    assert_eq!(
        sealrpc::wire::header::parse_alert(&refused),
        Some(1),
        "the replay over WebSocket is refused"
    );
    drop((r, w));
    let _ = stop.send(());
    serving.await.expect("join").expect("run");
}
