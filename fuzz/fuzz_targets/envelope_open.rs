//! Arbitrary bytes as an envelope, opened with a fixed key: must return a
//! typed error (or, for a sealed input, the load), never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::{Kind, Opener, SessionRegistry};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([7; 32]);
    let mut opener = Opener::new(Arc::new(Keyring::single(key)), Arc::new(SessionRegistry::new(60_000, 16)), Kind::Request, u64::MAX / 4, 1 << 20);
    let mut frame = data.to_vec();
    let _ = sealrpc::wire::Header::parse(&frame);
    let _ = opener.open(&mut frame, 1_767_225_600_000);
});
