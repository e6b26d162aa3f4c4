//! The test vector published in docs/wire-format.md: fixed key, salt,
//! sequence, time and load must seal to exactly these bytes, and open back.
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::load::{self, Carrier, RequestLoad};
use sealrpc::wire::{Kind, Opener, Sealer, SessionRegistry};
use std::sync::Arc;

pub const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const SALT: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
pub const TIME_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
pub const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// The sealed envelope (without the transport's 4-byte length prefix).
pub const ENVELOPE: &str = include_str!("data/wire-vector.hex");

fn vector_load() -> RequestLoad<'static> {
    RequestLoad {
        retry: &[],
        id: 1,
        method: "test.echo",
        body: b"\x91\xa5hello",
        deadline_ms: 30_000,
        trace: Carrier(vec![("traceparent", TRACEPARENT)]),
    }
}

fn key() -> Key {
    let mut k = [0u8; 32];
    hex::decode_to_slice(KEY, &mut k).expect("hex");
    Key::from_bytes(k)
}

#[test]
fn the_published_vector_seals_to_the_published_bytes_and_opens() {
    let mut salt = [0u8; 16];
    hex::decode_to_slice(SALT, &mut salt).expect("hex");
    let mut sealer = Sealer::new(key(), salt);
    let mut out = bytes::BytesMut::new();
    let load = vector_load();
    sealer
        .seal(Kind::Request, TIME_MS, 1 << 20, &mut out, |b| {
            load::encode(&load, b)
        })
        .expect("seal");
    let got = hex::encode(&out);
    if std::env::var_os("SEALRPC_PRINT_VECTOR").is_some() {
        println!("{got}");
    }
    assert_eq!(
        got,
        ENVELOPE.trim(),
        "the sealed bytes changed: the wire format changed"
    );

    let mut opener = Opener::new(
        Arc::new(Keyring::single(key())),
        Arc::new(SessionRegistry::new(60_000, 4)),
        Kind::Request,
        60_000,
        1 << 20,
    );
    let mut frame = out.to_vec();
    let o = opener.open(&mut frame, TIME_MS + 1).expect("open");
    assert_eq!(
        load::decode::<RequestLoad>(&frame[o.load]).expect("decode"),
        vector_load()
    );
    assert_eq!(
        key().id(),
        u32::from_str_radix(&ENVELOPE[8..16], 16).expect("hex"),
        "key id in header"
    );
}
