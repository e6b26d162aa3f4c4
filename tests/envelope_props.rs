//! Property tests: seal/open and encode/decode round trips (requests and
//! replies; every kind at arbitrary sequences, with and without a binding);
//! any single-bit flip of a sealed envelope fails with its exact typed error
//! and leaves the opener's state untouched; arbitrary bytes never panic.
//! (The load codec alone: `tests/load_props.rs`.)
#[path = "support/envelope.rs"]
mod fixtures;
use bytes::BytesMut;
use fixtures::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use sealrpc::error::WireError;
use sealrpc::wire::load::{self, Carrier, MAX_TRACE_PAIRS};
use sealrpc::wire::{
    Header, Kind, PublishLoad, ReplyLoad, RequestLoad, Sealer, HEADER_LEN, TAG_LEN,
};

// ---------------------------------------------------------------- properties

fn prop_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x5ea1_59c0),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn trace_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((".{0,20}", ".{0,60}"), 0..=MAX_TRACE_PAIRS)
}

/// One load of each kind, from the same arbitrary parts.
#[derive(Clone, Debug)]
struct Parts {
    kind: Kind,
    id: u64,
    method: String,
    body: Vec<u8>,
    number: u32,
    trace: Vec<(String, String)>,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        prop::sample::select(vec![Kind::Request, Kind::Reply, Kind::Publish]),
        any::<u64>(),
        ".{0,40}",
        prop::collection::vec(any::<u8>(), 0..512),
        any::<u32>(),
        trace_pairs(),
    )
        .prop_map(|(kind, id, method, body, number, trace)| Parts {
            kind,
            id,
            method,
            body,
            number,
            trace,
        })
}

impl Parts {
    fn carrier(&self) -> Carrier<'_> {
        Carrier(
            self.trace
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        )
    }

    /// Seals the load of this kind.
    fn seal(&self, sealer: &mut Sealer, now: u64) -> Vec<u8> {
        let r = match self.kind {
            Kind::Request => seal_with(sealer, self.kind, now, MAX, &self.request()),
            Kind::Reply => seal_with(sealer, self.kind, now, MAX, &self.reply()),
            Kind::Publish => seal_with(sealer, self.kind, now, MAX, &self.publish()),
        };
        r.expect("seal")
    }

    /// Decodes `plain` as this kind's load and compares.
    fn matches(&self, plain: &[u8]) -> bool {
        match self.kind {
            Kind::Request => load::decode::<RequestLoad>(plain).ok() == Some(self.request()),
            Kind::Reply => load::decode::<ReplyLoad>(plain).ok() == Some(self.reply()),
            Kind::Publish => load::decode::<PublishLoad>(plain).ok() == Some(self.publish()),
        }
    }

    fn request(&self) -> RequestLoad<'_> {
        RequestLoad {
            retry: &[],
            id: self.id,
            method: &self.method,
            body: &self.body,
            deadline_ms: self.number,
            trace: self.carrier(),
        }
    }

    fn reply(&self) -> ReplyLoad<'_> {
        ReplyLoad {
            id: self.id,
            status: self.number as u8,
            body: &self.body,
        }
    }

    fn publish(&self) -> PublishLoad<'_> {
        PublishLoad {
            jid: "1700000000000000",
            to: &self.method,
            method: "test.echo",
            body: &self.body,
            deadline_ms: self.number,
            trace: self.carrier(),
        }
    }
}

/// A sealer at sequence `seq` (reached by sealing `seq` envelopes first),
/// bound to `binding` if any, and an opener to match.
fn session_at(
    seq: u64,
    salt: [u8; 16],
    binding: Option<[u8; 16]>,
    kind: Kind,
) -> (
    Sealer,
    sealrpc::wire::Opener,
    std::sync::Arc<sealrpc::wire::SessionRegistry>,
) {
    let key = key_a();
    let mut sealer = Sealer::new(key.clone(), salt);
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, kind);
    if let Some(b) = binding {
        sealer.bind(b);
        op.bind(b);
    }
    for _ in 0..seq {
        seal_with(&mut sealer, kind, T0, MAX, &()).expect("seal");
    }
    (sealer, op, reg)
}

proptest! {
    #![proptest_config(prop_config(256))]

    /// Every kind, at arbitrary sequences, with and without a binding: the
    /// header says what was sealed and the load comes back unchanged.
    #[test]
    fn prop_every_kind_round_trips_at_any_sequence(
        p in parts(),
        seq in 0u64..600,
        salt in any::<[u8; 16]>(),
        binding in any::<Option<[u8; 16]>>(),
        skew in 0..=2 * TTL,
    ) {
        let (mut sealer, mut op, reg) = session_at(seq, salt, binding, p.kind);
        let sent = T0 - TTL + skew;
        let env = p.seal(&mut sealer, sent);
        let h = header_of(&env);
        prop_assert_eq!((h.kind, h.key_id, h.salt, h.seq, h.time_ms), (p.kind, key_a().id(), salt, seq, sent));
        let plain = open_copy(&mut op, &env, T0).expect("open");
        prop_assert!(p.matches(&plain), "the load changed");
        prop_assert_eq!(reg.len(), 1);
        op.close(T0);
    }

    /// Any single-bit flip anywhere in a sealed envelope (any kind, load,
    /// sequence, binding) fails with the exact typed error its position
    /// calls for (`fixtures::flip_error`), claims no session, and leaves
    /// the opener able to open the untouched envelope.
    #[test]
    fn prop_any_single_bit_flip_fails_with_a_typed_error(
        p in parts(),
        seq in 0u64..600,
        salt in any::<[u8; 16]>(),
        binding in any::<Option<[u8; 16]>>(),
        region in prop_oneof![2 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        at in any::<prop::sample::Index>(),
        bit in 0u32..8,
    ) {
        let (mut sealer, mut op, reg) = session_at(seq, salt, binding, p.kind);
        let env = p.seal(&mut sealer, T0);
        // Half the flips in the header (most of a long envelope is its
        // ciphertext), a quarter in the tag, a quarter anywhere.
        let pos = match region {
            0 => at.index(HEADER_LEN),
            1 => env.len() - TAG_LEN + at.index(TAG_LEN),
            _ => at.index(env.len()),
        };
        let mask = 1u8 << bit;
        let mut flipped = env.clone();
        flipped[pos] ^= mask;
        let mut f = flipped.clone();
        let got = op.open(&mut f, T0);
        prop_assert_eq!(got, Err(flip_error(&flipped, pos, p.kind, &[])), "bit {} of byte {}", bit, pos);
        prop_assert!(reg.is_empty(), "a tampered envelope claimed a session");
        let plain = open_copy(&mut op, &env, T0).expect("the untouched envelope");
        prop_assert!(p.matches(&plain));
        op.close(T0);
    }

    #[test]
    fn prop_request_round_trips(
        id in any::<u64>(),
        method in ".{0,80}",
        body in prop::collection::vec(any::<u8>(), 0..2048),
        deadline_ms in any::<u32>(),
        trace in trace_pairs(),
        salt in any::<[u8; 16]>(),
        now in 0u64..u64::MAX / 2,
    ) {
        let key = key_a();
        let reg = registry();
        let load = RequestLoad { retry: &[],
            id,
            method: &method,
            body: &body,
            deadline_ms,
            trace: Carrier(trace.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
        };
        let mut sealer = Sealer::new(key.clone(), salt);
        let env = seal_with(&mut sealer, Kind::Request, now, MAX, &load).expect("seal");
        let h = header_of(&env);
        prop_assert_eq!((h.kind, h.key_id, h.salt, h.seq, h.time_ms), (Kind::Request, key.id(), salt, 0, now));
        let mut op = opener_for(&[&key], &reg, Kind::Request);
        let plain = open_copy(&mut op, &env, now).expect("open");
        let got: RequestLoad = load::decode(&plain).expect("decode");
        prop_assert_eq!(got, load);
        prop_assert_eq!(open_copy(&mut op, &env, now), Err(WireError::Replayed { seq: 0 }));
        op.close(now);
    }

    #[test]
    fn prop_reply_round_trips(
        id in any::<u64>(),
        status in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..2048),
        salt in any::<[u8; 16]>(),
    ) {
        let key = key_b();
        let reg = registry();
        let load = ReplyLoad { id, status, body: &body };
        let mut sealer = Sealer::new(key.clone(), salt);
        let env = seal_with(&mut sealer, Kind::Reply, T0, MAX, &load).expect("seal");
        let mut op = opener_for(&[&key], &reg, Kind::Reply);
        let plain = open_copy(&mut op, &env, T0).expect("open");
        prop_assert_eq!(load::decode::<ReplyLoad>(&plain).expect("decode"), load);
        op.close(T0);
    }

    #[test]
    fn prop_arbitrary_bytes_never_open_or_panic(
        frame in prop::collection::vec(any::<u8>(), 0..600),
        now in any::<u64>(),
    ) {
        let key = key_a();
        let reg = registry();
        let mut op = opener_for(&[&key], &reg, Kind::Request);
        let mut f = frame.clone();
        let r = op.open(&mut f, now);
        prop_assert!(r.is_err(), "random bytes opened: {:?}", r);
        prop_assert!(reg.is_empty());
    }

    /// Frames with a well-formed header under a known key (so they get past
    /// every cheap check), arbitrary salt/seq, a time within the TTL, and an
    /// arbitrary body and tag: always AuthenticationFailed, never a panic.
    #[test]
    fn prop_forged_frames_with_valid_headers_fail_authentication(
        salt in any::<[u8; 16]>(),
        seq in any::<u64>(),
        skew in 0u64..=2 * TTL,
        rest in prop::collection::vec(any::<u8>(), TAG_LEN..600),
    ) {
        let key = key_a();
        let reg = registry();
        let sent = T0 - TTL + skew;
        let h = Header { kind: Kind::Request, key_id: key.id(), salt, seq, time_ms: sent };
        let mut head = [0u8; HEADER_LEN];
        h.write(&mut head);
        let mut frame = head.to_vec();
        frame.extend_from_slice(&rest);
        prop_assert_eq!(Header::parse(&frame), Ok(h));
        let mut op = opener_for(&[&key], &reg, Kind::Request);
        prop_assert_eq!(open_copy(&mut op, &frame, T0), Err(WireError::AuthenticationFailed));
        prop_assert!(reg.is_empty());
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic_the_load_decoder(
        buf in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = load::decode::<RequestLoad>(&buf);
        let _ = load::decode::<ReplyLoad>(&buf);
    }

    /// Mutations of a valid encoding reach deeper into the decoder.
    #[test]
    fn prop_mutated_loads_never_panic_the_decoder(
        method in ".{0,20}",
        body in prop::collection::vec(any::<u8>(), 0..64),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let load = RequestLoad { retry: &[], id: 5, method: &method, body: &body, deadline_ms: 9, trace: Carrier(vec![("traceparent", tp)]) };
        let mut enc = BytesMut::new();
        load::encode(&load, &mut enc).expect("encode");
        let mut buf = enc.to_vec();
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let _ = load::decode::<RequestLoad>(&buf);
        let _ = load::decode::<ReplyLoad>(&buf);
        let n = cut.index(buf.len());
        prop_assert!(load::decode::<RequestLoad>(&enc[..n]).is_err(), "a strict prefix decoded");
    }
}
