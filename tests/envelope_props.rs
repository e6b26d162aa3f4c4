//! Property tests: seal/open and encode/decode round trips; arbitrary bytes never panic.
#[path = "support/envelope.rs"]
mod fixtures;
use bytes::BytesMut;
use fixtures::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use sealrpc::error::WireError;
use sealrpc::wire::load::{self, Carrier, MAX_TRACE_PAIRS};
use sealrpc::wire::{Header, Kind, ReplyLoad, RequestLoad, Sealer, HEADER_LEN, TAG_LEN};

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

proptest! {
    #![proptest_config(prop_config(256))]

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
        let load = RequestLoad {
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
        let load = RequestLoad { id: 5, method: &method, body: &body, deadline_ms: 9, trace: Carrier(vec![("traceparent", tp)]) };
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
