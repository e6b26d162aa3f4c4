//! Envelope seal and open per load size, and load encode/decode.
//! `cargo bench --bench envelope`
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::load::{self, Carrier, RequestLoad};
use sealrpc::wire::{Kind, Opener, Sealer, SealerLimits, SessionRegistry};
use std::hint::black_box;
use std::sync::Arc;

const SIZES: &[usize] = &[64, 1024, 16 * 1024, 64 * 1024];
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    let key = Key::generate();
    for &size in SIZES {
        let body = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let load = RequestLoad {
            id: 1,
            method: "test.echo",
            body: &body,
            deadline_ms: 0,
            trace: Carrier::default(),
        };
        let limits = SealerLimits {
            soft: u64::MAX,
            hard: u64::MAX,
        };
        let mut sealer = Sealer::with_limits(key.clone(), [1; 16], limits);
        let mut out = bytes::BytesMut::with_capacity(size + 128);
        g.bench_with_input(BenchmarkId::new("seal", size), &size, |b, _| {
            b.iter(|| {
                out.clear();
                sealer
                    .seal(Kind::Request, 1, usize::MAX, &mut out, |b| {
                        load::encode(&load, b)
                    })
                    .expect("seal");
                black_box(&out);
            })
        });
        // Open: one pre-sealed envelope per iteration (each may be opened once).
        let mut opener = Opener::new(
            Arc::new(Keyring::single(key.clone())),
            Arc::new(SessionRegistry::new(u64::MAX / 4, 8)),
            Kind::Request,
            u64::MAX / 4,
            usize::MAX,
        );
        g.bench_with_input(BenchmarkId::new("open", size), &size, |b, _| {
            b.iter_batched(
                || {
                    let mut out = bytes::BytesMut::new();
                    sealer
                        .seal(Kind::Request, 1, usize::MAX, &mut out, |b| {
                            load::encode(&load, b)
                        })
                        .expect("seal");
                    out
                },
                |mut frame| {
                    let o = opener.open(&mut frame, 1).expect("open");
                    black_box(
                        load::decode::<RequestLoad>(&frame[o.load])
                            .expect("decode")
                            .body
                            .len(),
                    )
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    let body = vec![7u8; 64];
    let traced = RequestLoad {
        id: 9,
        method: "test.echo",
        body: &body,
        deadline_ms: 30_000,
        trace: Carrier(vec![("traceparent", TRACEPARENT)]),
    };
    let mut out = bytes::BytesMut::new();
    g.bench_function("encode_64_traced", |b| {
        b.iter(|| {
            out.clear();
            load::encode(&traced, &mut out).expect("encode");
        })
    });
    load::encode(&traced, &mut out).expect("encode");
    let bytes = out.clone();
    g.bench_function("decode_64_traced", |b| {
        b.iter(|| black_box(load::decode::<RequestLoad>(&bytes).expect("decode").id))
    });
    g.bench_function("extract_traceparent", |b| {
        b.iter(|| black_box(sealrpc::context::extract(&[("traceparent", TRACEPARENT)])))
    });
    g.finish();
}

criterion_group!(benches, seal_open, codec);
criterion_main!(benches);
