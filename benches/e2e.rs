//! End-to-end request/reply over loopback, one call in flight, per
//! transport (`e2e_tcp`, `e2e_zmq`, `e2e_ws`). Server, client and echo
//! tasks share one current-thread runtime.
//!
//! - `sealed_echo_64b_tracing_off`: `Client::call` of a `bench.echo` route
//!   (returns its body) with a 64-byte body, tracing off.
//! - `raw_frame_echo_{N}b`: the floor on the same transport through
//!   `sealrpc::transport` (`Listener`, `connect`, `push_frame`,
//!   `send_batch`, `recv`), no envelope, no channel: a frame of N bytes (the
//!   size of the sealed 64-byte echo request) written and echoed back, with no
//!   writer or reader task on the client side.
//! - TCP only: `sealed_ping_tracing_off` / `sealed_ping_tracing_on` (a
//!   `test.ping`, and with tracing on: 100% sampling, the SDK's batch
//!   processor, an exporter that discards), `sealed_echo_64b_tracing_on`,
//!   and `raw_tcp_echo_72b`, a plain tokio `TcpStream` echo of a 72-byte frame
//!   (about a sealed ping's size).
//!
//! `taskset -c 0 cargo bench --bench e2e`
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Bencher, Criterion};
use sealrpc::channel::{ChannelConfig, Client, Router, Server};
use sealrpc::keys::Key;
use sealrpc::transport::{
    connect, push_frame, AnyRecv, AnySend, Endpoint, FrameRecv, FrameSend, Listener,
    DEFAULT_MAX_FRAME,
};
use sealrpc::wire::load::{self, Carrier, RequestLoad};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

const METHOD: &str = "bench.echo";
const BODY: usize = 64;
const TRANSPORTS: [(&str, &str); 3] = [
    ("tcp", "tcp://127.0.0.1:0"),
    ("zmq", "zmq://127.0.0.1:0"),
    ("ws", "ws://127.0.0.1:0/sealrpc"),
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server (built-in methods and `bench.echo`) on `url`, running; a client
/// connected to it.
async fn sealed_client(url: &str, cfg: ChannelConfig) -> Client {
    let router =
        sealrpc::builtin::register(Router::new()).route(METHOD, |req| async move { Ok(req.body) });
    let server = Server::bind(url, router, cfg.clone()).await.expect("bind");
    let url = server.local_url().expect("url");
    tokio::spawn(server.run(std::future::pending()));
    Client::connect(&url, cfg).await.expect("connect")
}

fn bench_call(b: &mut Bencher, rt: &Runtime, client: &Client, method: &str, body: &Bytes) {
    b.to_async(rt).iter(|| async {
        let reply = client.call(method, body.clone()).await.expect("call");
        assert!(method != METHOD || reply.len() == body.len());
    })
}

/// The size of the sealed request frame of a 64-byte `bench.echo` call.
fn sealed_request_len() -> usize {
    let body = [0u8; BODY];
    let req = RequestLoad {
        retry: &[],
        id: 1,
        method: METHOD,
        body: &body,
        deadline_ms: 30_000,
        trace: Carrier::default(),
    };
    let mut out = BytesMut::new();
    load::encode(&req, &mut out).expect("encode");
    sealrpc::wire::HEADER_LEN + out.len() + sealrpc::wire::TAG_LEN
}

/// An echo server on `url` (every frame of every connection sent back) and
/// a connection to it.
async fn raw_connection(url: &str) -> (AnyRecv, AnySend) {
    let endpoint = Endpoint::parse(url).expect("url");
    let listener = Listener::bind(&endpoint, DEFAULT_MAX_FRAME)
        .await
        .expect("bind");
    let url = listener.local_url().expect("url");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((mut r, mut w, _)) => {
                    tokio::spawn(async move {
                        let mut batch = BytesMut::new();
                        while let Ok(Some(frame)) = r.recv().await {
                            push_frame(&mut batch, DEFAULT_MAX_FRAME, |b| {
                                b.extend_from_slice(&frame);
                                Ok(())
                            })
                            .expect("frame");
                            if w.send_batch(&mut batch).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(e) if e.concerns_one_connection() => {}
                Err(_) => return,
            }
        }
    });
    let (r, w, _) = connect(&Endpoint::parse(&url).expect("url"), DEFAULT_MAX_FRAME)
        .await
        .expect("connect");
    (r, w)
}

fn bench_raw(b: &mut Bencher, rt: &Runtime, conn: &mut (AnyRecv, AnySend), size: usize) {
    let payload = vec![7u8; size];
    let mut batch = BytesMut::with_capacity(size + 4);
    b.iter_custom(|iters| {
        rt.block_on(async {
            let (r, w) = &mut *conn;
            let start = Instant::now();
            for _ in 0..iters {
                push_frame(&mut batch, DEFAULT_MAX_FRAME, |b| {
                    b.extend_from_slice(&payload);
                    Ok(())
                })
                .expect("frame");
                w.send_batch(&mut batch).await.expect("send");
                let frame = r.recv().await.expect("recv").expect("open");
                assert_eq!(frame.len(), size);
            }
            start.elapsed()
        })
    });
}

/// A plain tokio TCP echo server of 72-byte frames (no sealrpc code) and a
/// connection to it.
fn raw_tcp_stream(rt: &Runtime) -> tokio::net::TcpStream {
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            let mut buf = [0u8; 72];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
        let tx = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tx.set_nodelay(true).expect("nodelay");
        tx
    })
}

fn bench_raw_tcp_stream(b: &mut Bencher, rt: &Runtime, tx: &mut tokio::net::TcpStream) {
    let mut buf = [7u8; 72];
    b.iter_custom(|iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                tx.write_all(&buf).await.expect("write");
                tx.read_exact(&mut buf).await.expect("read");
            }
            start.elapsed()
        })
    });
}

#[cfg(feature = "otel")]
fn traced_config() -> ChannelConfig {
    // 100% sampling, the SDK's batch processor, an exporter that discards.
    #[derive(Debug)]
    struct Discard;
    impl opentelemetry_sdk::trace::SpanExporter for Discard {
        async fn export(
            &self,
            _batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .build();
    let telemetry = sealrpc::telemetry::Telemetry::from_provider(provider);
    ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry))
}

fn e2e(c: &mut Criterion) {
    let rt = runtime();
    let body = Bytes::from(vec![0xa5u8; BODY]);
    let frame = sealed_request_len();
    for (name, url) in TRANSPORTS {
        let mut g = c.benchmark_group(format!("e2e_{name}"));
        let off = rt.block_on(sealed_client(url, ChannelConfig::new(Key::generate())));
        g.bench_function("sealed_echo_64b_tracing_off", |b| {
            bench_call(b, &rt, &off, METHOD, &body)
        });
        if name == "tcp" {
            g.bench_function("sealed_ping_tracing_off", |b| {
                bench_call(b, &rt, &off, "test.ping", &Bytes::new())
            });
            #[cfg(feature = "otel")]
            {
                let on = rt.block_on(sealed_client(url, traced_config()));
                g.bench_function("sealed_ping_tracing_on", |b| {
                    bench_call(b, &rt, &on, "test.ping", &Bytes::new())
                });
                g.bench_function("sealed_echo_64b_tracing_on", |b| {
                    bench_call(b, &rt, &on, METHOD, &body)
                });
            }
        }
        let mut conn = rt.block_on(raw_connection(url));
        g.bench_function(format!("raw_frame_echo_{frame}b"), |b| {
            bench_raw(b, &rt, &mut conn, frame)
        });
        if name == "tcp" {
            let mut tx = raw_tcp_stream(&rt);
            g.bench_function("raw_tcp_echo_72b", |b| {
                bench_raw_tcp_stream(b, &rt, &mut tx)
            });
        }
        g.finish();
    }
}

criterion_group!(benches, e2e);
criterion_main!(benches);
