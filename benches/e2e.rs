//! End-to-end request/reply over loopback TCP, one call in flight: a sealed
//! `test.ping` with tracing off and on (100% sampling, batch export),
//! against a raw TCP echo of the same frame size as the floor.
//! `taskset -c 0 cargo bench --bench e2e`
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sealrpc::channel::{ChannelConfig, Client, Router, Server};
use sealrpc::keys::Key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn sealed_client(rt_cfg: ChannelConfig) -> Client {
    let server = Server::bind(
        "tcp://127.0.0.1:0",
        sealrpc::builtin::register(Router::new()),
        rt_cfg.clone(),
    )
    .await
    .expect("bind");
    let url = format!("tcp://{}", server.local_addr().expect("addr"));
    tokio::spawn(server.run(std::future::pending()));
    Client::connect(&url, rt_cfg).await.expect("connect")
}

fn e2e(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("e2e_tcp");

    let off = rt.block_on(sealed_client(ChannelConfig::new(Key::generate())));
    g.bench_function("sealed_ping_tracing_off", |b| {
        b.to_async(&rt)
            .iter(|| async { off.call("test.ping", Bytes::new()).await.expect("ping") })
    });

    #[cfg(feature = "otel")]
    {
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
        let cfg = ChannelConfig::new(Key::generate()).with_telemetry(Some(telemetry));
        let on = rt.block_on(sealed_client(cfg));
        g.bench_function("sealed_ping_tracing_on", |b| {
            b.to_async(&rt)
                .iter(|| async { on.call("test.ping", Bytes::new()).await.expect("ping") })
        });
    }

    // The floor: a raw echo of a 72-byte frame (about a sealed ping's size).
    let (mut tx, _echo) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let echo = tokio::spawn(async move {
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
        (tx, echo)
    });
    let mut buf = [7u8; 72];
    g.bench_function("raw_tcp_echo_72b", |b| {
        b.iter(|| {
            rt.block_on(async {
                tx.write_all(&buf).await.expect("write");
                tx.read_exact(&mut buf).await.expect("read");
            })
        })
    });
    g.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
