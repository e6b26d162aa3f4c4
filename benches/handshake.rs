//! One full Noise XX handshake (both sides, in memory), and each side's share.
//! `taskset -c 0 cargo bench --bench handshake`
use criterion::{criterion_group, criterion_main, Criterion};
use sealrpc::wire::handshake::{Initiator, Responder};
use std::hint::black_box;

const CLIENT: [u8; 32] = [0x11; 32];
const SERVER: [u8; 32] = [0x22; 32];
const SERVER_INFO: &[u8] = b"sealrpc master";
const MINION_ID: &[u8] = b"web1";

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.bench_function("full", |b| {
        b.iter(|| {
            let (init, f1) = Initiator::start(&CLIENT).expect("start");
            let (resp, f2) = Responder::respond(&SERVER, &f1, SERVER_INFO).expect("respond");
            let (f3, client) = init.finish(&f2, MINION_ID).expect("finish");
            let server = resp.finish(&f3).expect("finish");
            black_box((client, server))
        })
    });
    g.finish();
}

criterion_group!(benches, handshake);
criterion_main!(benches);
