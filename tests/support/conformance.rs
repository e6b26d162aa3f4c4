//! The transport conformance suite: the same checks for every transport,
//! driven through the channel. `tests/conformance.rs` instantiates it once
//! per transport with `conformance!(name, "scheme://127.0.0.1:0...")`.
use super::{builtins, start_at};
use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, Client, HandlerError, Router};
use sealrpc::keys::Key;
use std::time::Duration;

const MAX_FRAME: usize = 64 * 1024;

fn config() -> ChannelConfig {
    let mut cfg = ChannelConfig::new(Key::generate());
    cfg.max_frame = MAX_FRAME;
    cfg
}

fn raw_echo() -> Router {
    builtins().route(
        "raw.echo",
        |req| async move { Ok::<_, HandlerError>(req.body) },
    )
}

pub async fn round_trip(url: &str) {
    let cfg = config();
    let server = start_at(url, raw_echo(), cfg.clone(), Duration::from_secs(5)).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let reply = client
        .call("raw.echo", Bytes::from_static(b"hello"))
        .await
        .expect("echo");
    assert_eq!(&reply[..], b"hello");
    assert!(client
        .call("raw.echo", Bytes::new())
        .await
        .expect("empty")
        .is_empty());
    drop(client);
    server.stop().await;
}

pub async fn thousand_in_flight(url: &str) {
    let cfg = config();
    let server = start_at(url, raw_echo(), cfg.clone(), Duration::from_secs(5)).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let calls = (0..1000u32).map(|i| {
        let client = client.clone();
        async move {
            let reply = client
                .call("raw.echo", Bytes::from(i.to_be_bytes().to_vec()))
                .await
                .expect("echo");
            assert_eq!(
                &reply[..],
                &i.to_be_bytes(),
                "reply {i} matched to its request"
            );
        }
    });
    futures::future::join_all(calls).await;
    drop(client);
    server.stop().await;
}

/// Loads up to the configured maximum go through; one over it is refused
/// with a typed error, and the connection keeps working.
pub async fn loads_up_to_the_maximum_and_a_typed_error_beyond(url: &str) {
    let cfg = config();
    let server = start_at(url, raw_echo(), cfg.clone(), Duration::from_secs(5)).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    // The envelope around a raw.echo body: header, tag, MessagePack fields.
    let largest = MAX_FRAME - 40 - 16 - 1 - 9 - 9 - 5 - 5;
    let body = Bytes::from(vec![0xa5; largest]);
    assert_eq!(
        client
            .call("raw.echo", body.clone())
            .await
            .expect("largest load")
            .len(),
        largest
    );
    let too_big = Bytes::from(vec![0xa5; MAX_FRAME]);
    let err = client
        .call("raw.echo", too_big)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(
            err,
            sealrpc::Error::Wire(sealrpc::error::WireError::TooLarge { .. })
                | sealrpc::Error::Transport(sealrpc::transport::TransportError::TooLarge { .. })
        ),
        "typed too-large error, got {err}"
    );
    assert_eq!(
        client
            .call("raw.echo", body)
            .await
            .expect("still usable")
            .len(),
        largest
    );
    drop(client);
    server.stop().await;
}

/// The server vanishing while a call is in flight ends the call with an
/// error well before its deadline — never a hang.
pub async fn peer_vanishing_mid_request_is_an_error_not_a_hang(url: &str) {
    let cfg = config();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started = std::sync::Mutex::new(Some(started_tx));
    let router = Router::new().route("hang", move |_r| {
        if let Some(tx) = started.lock().expect("lock").take() {
            let _ = tx.send(());
        }
        std::future::pending::<Result<Bytes, HandlerError>>()
    });
    let server = start_at(url, router, cfg.clone(), Duration::ZERO).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller
            .call_with_timeout("hang", Bytes::new(), Duration::from_secs(300))
            .await
    });
    started_rx.await.expect("handler started");
    server.stop().await; // zero grace: the connection is torn down under the call
    let result = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("no hang")
        .expect("join");
    assert!(
        matches!(
            result,
            Err(sealrpc::Error::ConnectionClosed) | Err(sealrpc::Error::Transport(_))
        ),
        "a connection error, not a timeout: {result:?}"
    );
}

#[cfg(feature = "otel")]
pub async fn trace_propagates_parent_to_child(url: &str) {
    use opentelemetry::trace::SpanKind;
    let (telemetry, collector) = sealrpc::telemetry::memory::collecting("conformance");
    let cfg = config().with_telemetry(Some(telemetry));
    let server = start_at(url, raw_echo(), cfg.clone(), Duration::from_secs(5)).await;
    let client = Client::connect(&server.url(), cfg).await.expect("connect");
    client
        .call("raw.echo", Bytes::from_static(b"t"))
        .await
        .expect("echo");
    drop(client);
    server.stop().await;
    let spans = collector.spans();
    let c = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    let s = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    assert_eq!(s.span_context.trace_id(), c.span_context.trace_id());
    assert_eq!(s.parent_span_id, c.span_context.span_id());
}

#[macro_export]
macro_rules! conformance {
    ($name:ident, $url:expr) => {
        mod $name {
            use $crate::support::conformance as suite;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn round_trip() {
                suite::round_trip($url).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn thousand_in_flight() {
                suite::thousand_in_flight($url).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn loads_up_to_the_maximum_and_a_typed_error_beyond() {
                suite::loads_up_to_the_maximum_and_a_typed_error_beyond($url).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn peer_vanishing_mid_request_is_an_error_not_a_hang() {
                suite::peer_vanishing_mid_request_is_an_error_not_a_hang($url).await
            }
            #[cfg(feature = "otel")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn trace_propagates_parent_to_child() {
                suite::trace_propagates_parent_to_child($url).await
            }
        }
    };
}
