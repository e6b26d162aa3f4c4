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

/// The master restarting: the client notices (an event, not a sleep),
/// reconnects on its own, and later calls succeed.
pub async fn clients_reconnect_after_the_server_restarts(url: &str) {
    let cfg = config();
    let first = start_at(url, raw_echo(), cfg.clone(), Duration::from_secs(5)).await;
    let fixed_url = first.url(); // the same address and port, for the restart
    let client = Client::connect(&fixed_url, cfg.clone())
        .await
        .expect("connect");
    assert_eq!(
        &client
            .call("raw.echo", Bytes::from_static(b"1"))
            .await
            .expect("before")[..],
        b"1"
    );
    first.stop().await;
    tokio::time::timeout(Duration::from_secs(60), client.disconnected())
        .await
        .expect("the client noticed");
    let second = start_at(&fixed_url, raw_echo(), cfg, Duration::from_secs(5)).await;
    assert_eq!(second.url(), fixed_url);
    for i in 0..3u8 {
        let reply = client
            .call("raw.echo", Bytes::from(vec![i]))
            .await
            .expect("after the restart");
        assert_eq!(&reply[..], &[i]);
    }
    drop(client);
    second.stop().await;
}

/// Payload bytes of every frame in a captured byte stream, as the wire
/// carries them: TCP length-delimited frames, or WebSocket frames after the
/// HTTP upgrade, unmasked (client frames are XOR-masked on the wire, so a
/// naive search of masked bytes would pass vacuously).
pub fn captured_payloads(url: &str, bytes: &[u8]) -> Vec<Vec<u8>> {
    if url.starts_with("tcp://") {
        return sealrpc::tap::split_frames(bytes);
    }
    if url.starts_with("zmq://") {
        return zmtp_messages(bytes);
    }
    let Some(start) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Vec::new();
    };
    let mut rest = &bytes[start + 4..];
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let masked = rest[1] & 0x80 != 0;
        let (len, mut at) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes")) as usize,
                10,
            ),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        let mask = if masked {
            let Some(m) = rest.get(at..at + 4) else { break };
            at += 4;
            [m[0], m[1], m[2], m[3]]
        } else {
            [0; 4]
        };
        let Some(payload) = rest.get(at..at + len) else {
            break;
        };
        out.push(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect(),
        );
        rest = &rest[at + len..];
    }
    out
}

/// ZMTP 3: a 64-byte greeting, then frames of `flags, size (1 byte, or 8 if
/// flags & 0x02), body`; command frames (flags & 0x04) are skipped.
fn zmtp_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = bytes.get(64..).unwrap_or_default();
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let flags = rest[0];
        let (len, at) = if flags & 0x02 != 0 {
            let Some(size) = rest.get(1..9) else { break };
            (
                u64::from_be_bytes(size.try_into().expect("8 bytes")) as usize,
                9,
            )
        } else {
            (rest[1] as usize, 2)
        };
        let Some(body) = rest.get(at..at + len) else {
            break;
        };
        if flags & 0x04 == 0 {
            out.push(body.to_vec());
        }
        rest = &rest[at + len..];
    }
    out
}

/// No trace id (hex or raw) and no `traceparent` in any frame on the wire,
/// while a peer holding the key finds the context in every request.
#[cfg(feature = "otel")]
pub async fn no_trace_data_on_the_wire(url: &str) {
    use opentelemetry::trace::SpanKind;
    use sealrpc::tap::{contains, Tap};
    let (telemetry, collector) = sealrpc::telemetry::memory::collecting("conformance");
    let key = Key::generate();
    let mut cfg = config().with_telemetry(Some(telemetry));
    cfg.key = key.clone();
    cfg.keyring = std::sync::Arc::new(sealrpc::keys::Keyring::single(key.clone()));
    let server = start_at(url, raw_echo(), cfg.clone(), Duration::from_secs(5)).await;
    let tap = Tap::start(server.addr).await.expect("tap");
    let through_tap = server
        .url()
        .replace(&server.addr.to_string(), &tap.addr().to_string());
    let client = Client::connect(&through_tap, cfg).await.expect("connect");
    for _ in 0..3 {
        client
            .call("raw.echo", Bytes::from_static(b"x"))
            .await
            .expect("echo");
    }
    drop(client);
    server.stop().await;
    let spans = collector.spans();
    let up = captured_payloads(url, &tap.to_server());
    let down = captured_payloads(url, &tap.to_client());
    assert!(
        up.len() >= 3 && down.len() >= 3,
        "captured {} up, {} down",
        up.len(),
        down.len()
    );
    for f in up.iter().chain(down.iter()) {
        assert!(!contains(f, b"traceparent"));
        for span in &spans {
            let id = span.span_context.trace_id();
            assert!(!contains(f, &id.to_bytes()) && !contains(f, id.to_string().as_bytes()));
        }
    }
    // The capture is real: with the key, every request carries the context.
    let requests: Vec<u8> = up
        .iter()
        .filter(|f| f.starts_with(b"SR\x01\x01"))
        .flat_map(|f| {
            let mut framed = (f.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(f);
            framed
        })
        .collect();
    let opened = super::open_captured_requests(&key, &requests);
    assert_eq!(opened.len(), 3);
    let clients = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .count();
    assert_eq!(clients, 3);
    for (_, plain) in opened {
        assert!(
            contains(&plain, b"traceparent"),
            "the sealed load carries the context"
        );
    }
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
            async fn clients_reconnect_after_the_server_restarts() {
                suite::clients_reconnect_after_the_server_restarts($url).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn peer_vanishing_mid_request_is_an_error_not_a_hang() {
                suite::peer_vanishing_mid_request_is_an_error_not_a_hang($url).await
            }
            #[cfg(feature = "otel")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_trace_data_on_the_wire() {
                suite::no_trace_data_on_the_wire($url).await
            }
            #[cfg(feature = "otel")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn trace_propagates_parent_to_child() {
                suite::trace_propagates_parent_to_child($url).await
            }
        }
    };
}
