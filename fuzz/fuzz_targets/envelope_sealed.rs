//! Structured envelope fuzzing: each input is sealed into a *valid*
//! envelope with a fixed key, then tampered with as the input says, then
//! opened. Random bytes almost never pass AES-GCM (`envelope_open` stops at
//! the tag), so this target is how the code after authentication gets
//! fuzzed: the load decoders on authenticated plaintext, and the replay
//! state.
//!
//! Input: `[kind, flips, (pos_lo, pos_hi, xor) * flips, load...]`.
//! Checks: an untampered envelope opens to exactly the sealed load, and
//! opening it again is refused as a replay; any changed byte (header, load
//! or tag) is refused; the authenticated load then goes through the
//! request, reply and publish decoders and trace extraction without a
//! panic.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sealrpc::error::WireError;
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::load::{self, PublishLoad, ReplyLoad, RequestLoad};
use sealrpc::wire::{Kind, Opener, Sealer, SessionRegistry};
use std::sync::Arc;

const NOW: u64 = 1_767_225_600_000;
const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kind = match kind % 3 {
        0 => Kind::Request,
        1 => Kind::Reply,
        _ => Kind::Publish,
    };
    let Some((&flips, mut rest)) = rest.split_first() else {
        return;
    };
    let mut edits = Vec::new();
    for _ in 0..flips % 8 {
        let Some((e, tail)) = rest.split_first_chunk::<3>() else {
            break;
        };
        edits.push((usize::from(u16::from_le_bytes([e[0], e[1]])), e[2]));
        rest = tail;
    }
    let plain = rest;
    let key = Key::from_bytes([7; 32]);
    let mut sealer = Sealer::new(key.clone(), [9; 16]);
    let mut frame = BytesMut::new();
    let sealed = sealer.seal(kind, NOW, MAX, &mut frame, |b| {
        b.extend_from_slice(plain);
        Ok(())
    });
    if sealed.is_err() {
        assert!(plain.len() + 64 > MAX, "sealing failed below the limit");
        return;
    }
    let mut tampered = false;
    for &(pos, xor) in &edits {
        let i = pos % frame.len();
        frame[i] ^= xor;
        tampered |= xor != 0;
    }
    // Two flips of one byte may cancel out: compare with a fresh seal.
    if tampered {
        let mut clean = BytesMut::new();
        let mut again = Sealer::new(key.clone(), [9; 16]);
        let _ = again.seal(kind, NOW, MAX, &mut clean, |b| {
            b.extend_from_slice(plain);
            Ok(())
        });
        tampered = clean != frame;
    }
    let mut opener = Opener::new(
        Arc::new(Keyring::single(key)),
        Arc::new(SessionRegistry::new(60_000, 16)),
        kind,
        60_000,
        MAX,
    );
    let mut copy = frame.to_vec();
    let opened = opener.open(&mut frame, NOW);
    if tampered {
        assert!(opened.is_err(), "a tampered envelope opened");
        return;
    }
    let Ok(opened) = opened else {
        panic!("an untampered envelope did not open: {opened:?}");
    };
    let load_bytes = &frame[opened.load.clone()];
    assert_eq!(load_bytes, plain, "the load changed");
    match opener.open(&mut copy, NOW) {
        Err(WireError::Replayed { .. }) => {}
        other => panic!("a replay was not refused as one: {other:?}"),
    }
    // The authenticated plaintext through every load decoder.
    if let Ok(req) = load::decode::<RequestLoad>(load_bytes) {
        let _ = sealrpc::context::extract(&req.trace.0);
        assert!(req.retry.len() <= load_bytes.len());
    }
    let _ = load::decode::<ReplyLoad>(load_bytes);
    if let Ok(publish) = load::decode::<PublishLoad>(load_bytes) {
        let _ = sealrpc::context::extract(&publish.trace.0);
    }
});
