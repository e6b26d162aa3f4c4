//! Envelope seal and open per load size (`envelope/{seal,open}/SIZE`: the
//! whole `Sealer::seal` / `Opener::open`, with the load encode or decode),
//! and AES-256-GCM alone on 64 KiB (`aes256gcm/{encrypt,decrypt}_in_place_detached/65536`),
//! the bound the cipher sets: a round trip seals and opens twice, so AES-256-GCM
//! alone allows at most 1 / (4 x mean(encrypt, decrypt)) round trips per second
//! at 64 KiB. Load encode/decode is in `benches/load.rs`, trace context in
//! `benches/trace.rs`.
//!
//! `taskset -c 0 cargo bench --bench envelope`
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::load::{self, Carrier, RequestLoad};
use sealrpc::wire::{Kind, Opener, Sealer, SealerLimits, SessionRegistry};
use std::hint::black_box;
use std::sync::Arc;

const SIZES: &[usize] = &[64, 1024, 16 * 1024, 64 * 1024];

fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    let key = Key::generate();
    for &size in SIZES {
        let body = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let load = RequestLoad {
            retry: &[],
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

/// AES-256-GCM alone (the `aes-gcm` crate the sealer uses, same version),
/// on a 64 KiB buffer with a 40-byte AAD (the envelope header): no HKDF,
/// header, load or replay check. `encrypt_inout_detached` and
/// `decrypt_inout_detached` are what `Sealer::seal` and `Opener::open` call;
/// aes-gcm 0.11 deprecates the `*_in_place_detached` names, which are thin
/// wrappers over them. Decrypt verifies the tag of the same ciphertext each
/// time: the buffer is refilled with it before each timed call (untimed).
fn aes_gcm_alone(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::Aes256Gcm;
    const SIZE: usize = 64 * 1024;
    let cipher = Aes256Gcm::new_from_slice(&[0x42; 32]).expect("32-byte key");
    let nonce = [0u8; 12].into();
    let aad = [0x5au8; sealrpc::wire::HEADER_LEN];
    let mut g = c.benchmark_group("aes256gcm");
    g.throughput(Throughput::Bytes(SIZE as u64));
    let mut buf = vec![7u8; SIZE];
    g.bench_function(BenchmarkId::new("encrypt_in_place_detached", SIZE), |b| {
        b.iter(|| {
            black_box(
                cipher
                    .encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into())
                    .expect("encrypt"),
            )
        })
    });
    let mut ciphertext = vec![7u8; SIZE];
    let tag = cipher
        .encrypt_inout_detached(&nonce, &aad, ciphertext.as_mut_slice().into())
        .expect("encrypt");
    g.bench_function(BenchmarkId::new("decrypt_in_place_detached", SIZE), |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                buf.copy_from_slice(&ciphertext);
                let start = std::time::Instant::now();
                cipher
                    .decrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into(), &tag)
                    .expect("tag verifies");
                total += start.elapsed();
            }
            black_box(&buf);
            total
        })
    });
    g.finish();
}

criterion_group!(benches, seal_open, aes_gcm_alone);
criterion_main!(benches);
