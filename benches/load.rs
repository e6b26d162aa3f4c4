//! Load encode and decode (`sealrpc::wire::load::{encode, decode}`, the
//! functions the channel calls), per body size (64 B, 1 KiB, 64 KiB).
//!
//! - `load/request_encode_{untraced,traced}/SIZE`, `load/reply_encode/SIZE`:
//!   the load appended to one reused `BytesMut` (cleared each time), as the
//!   channel's outbox writes it into its batch.
//! - `load/request_decode_{untraced,traced}/SIZE`, `load/reply_decode/SIZE`:
//!   decoded from a byte slice, borrowing method, body and carrier (no copy).
//!
//! "traced" requests carry the fifth element, a carrier with `traceparent`
//! and a two-member `tracestate`, as a traced call sends it; "untraced" ones
//! have no carrier (tracing off). Throughput is the body size.
//!
//! `taskset -c 0 cargo bench --bench load`
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealrpc::wire::load::{self, Carrier, ReplyLoad, RequestLoad};
use std::hint::black_box;

const SIZES: &[usize] = &[64, 1024, 64 * 1024];
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

fn request(body: &[u8], traced: bool) -> RequestLoad<'_> {
    RequestLoad {
        retry: &[],
        id: 1_000_003,
        method: "bench.echo",
        body,
        deadline_ms: 30_000,
        trace: if traced {
            Carrier(vec![
                ("traceparent", TRACEPARENT),
                ("tracestate", TRACESTATE),
            ])
        } else {
            Carrier::default()
        },
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    for (op, encode) in [("request_encode", true), ("request_decode", false)] {
        for &size in SIZES {
            let body = vec![0xa5u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            for (name, traced) in [("untraced", false), ("traced", true)] {
                let req = request(&body, traced);
                let mut out = BytesMut::with_capacity(size + 256);
                load::encode(&req, &mut out).expect("encode");
                let id = BenchmarkId::new(format!("{op}_{name}"), size);
                if encode {
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            out.clear();
                            load::encode(black_box(&req), &mut out).expect("encode");
                            black_box(out.len())
                        })
                    });
                } else {
                    let bytes = out.freeze();
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            let r: RequestLoad =
                                load::decode(black_box(&bytes[..])).expect("decode");
                            black_box((r.body.as_ptr(), r.trace.0.len()))
                        })
                    });
                }
            }
        }
    }
    for (op, encode) in [("reply_encode", true), ("reply_decode", false)] {
        for &size in SIZES {
            let body = vec![0xa5u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            let reply = ReplyLoad {
                id: 1_000_003,
                status: 0,
                body: &body,
            };
            let mut out = BytesMut::with_capacity(size + 64);
            load::encode(&reply, &mut out).expect("encode");
            if encode {
                g.bench_with_input(BenchmarkId::new(op, size), &size, |b, _| {
                    b.iter(|| {
                        out.clear();
                        load::encode(black_box(&reply), &mut out).expect("encode");
                        black_box(out.len())
                    })
                });
            } else {
                let bytes = out.freeze();
                g.bench_with_input(BenchmarkId::new(op, size), &size, |b, _| {
                    b.iter(|| {
                        let r: ReplyLoad = load::decode(black_box(&bytes[..])).expect("decode");
                        black_box(r.body.as_ptr())
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
