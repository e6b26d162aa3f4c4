//! Property tests of the load codec (`src/wire/load.rs`): requests, replies
//! and publishes with arbitrary ids, methods, bodies and trace carriers
//! encode and decode back to themselves; lengths straddle MessagePack's
//! size classes (fixstr/str8/str16, bin8/bin16/bin32); a carrier over the
//! limit, a strict prefix or a trailing byte is a typed error.
//! (Seal/open round trips of loads: `tests/envelope_props.rs`.)
use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use sealrpc::error::WireError;
use sealrpc::wire::load::{self, Carrier, MAX_TRACE_PAIRS};
use sealrpc::wire::{PublishLoad, ReplyLoad, RequestLoad};

fn prop_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x10ad_c0de),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A length, often at or next to a MessagePack size-class boundary.
fn length(max: usize) -> impl Strategy<Value = usize> {
    let edges: Vec<usize> = [0, 1, 15, 16, 31, 32, 255, 256, 65_535, 65_536, 70_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    prop_oneof![
        3 => 0..=64usize.min(max),
        1 => prop::sample::select(edges),
    ]
}

/// Arbitrary UTF-8 (any scalar values), of a length in characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    length(max)
        .prop_flat_map(|n| prop::collection::vec(any::<char>(), n))
        .prop_map(|chars| chars.into_iter().collect())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    length(max).prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
}

/// Up to `MAX_TRACE_PAIRS` carrier pairs with arbitrary names and values.
fn trace(max_pairs: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((text(300), text(300)), 0..=max_pairs)
}

fn carrier(pairs: &[(String, String)]) -> Carrier<'_> {
    Carrier(
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    )
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = BytesMut::new();
    load::encode(value, &mut out).expect("encode");
    out.to_vec()
}

/// A strict prefix and the encoding with one byte appended both fail to
/// decode (`decodes` says whether its input decoded).
fn assert_only_whole_decodes(
    enc: &[u8],
    cut: prop::sample::Index,
    decodes: impl Fn(&[u8]) -> bool,
) -> Result<(), TestCaseError> {
    let n = cut.index(enc.len());
    prop_assert!(
        !decodes(&enc[..n]),
        "a prefix of {}/{} bytes decoded",
        n,
        enc.len()
    );
    let mut longer = enc.to_vec();
    longer.push(0xc0);
    prop_assert!(!decodes(&longer), "decoded with a trailing byte");
    Ok(())
}

proptest! {
    #![proptest_config(prop_config(192))]

    #[test]
    fn prop_request_load_round_trips(
        id in any::<u64>(),
        method in text(70_000),
        body in bytes(70_000),
        deadline_ms in any::<u32>(),
        pairs in trace(MAX_TRACE_PAIRS),
        retry in prop::collection::vec(any::<u8>(), 0..=load::MAX_RETRY_KEY),
        cut in any::<prop::sample::Index>(),
    ) {
        let load = RequestLoad { id, method: &method, body: &body, deadline_ms, trace: carrier(&pairs), retry: &retry };
        let enc = encode(&load);
        // Four fields, a fifth only when there is a trace context, a sixth
        // (with the fifth, maybe empty) only with a retry key.
        let shape = match (pairs.is_empty(), retry.is_empty()) {
            (_, false) => 0x96,
            (false, true) => 0x95,
            (true, true) => 0x94,
        };
        prop_assert_eq!(enc[0], shape);
        prop_assert_eq!(load::decode::<RequestLoad>(&enc).expect("decode"), load);
        assert_only_whole_decodes(&enc, cut, |b| load::decode::<RequestLoad>(b).is_ok())?;
    }

    #[test]
    fn prop_publish_load_round_trips(
        jid in text(40),
        to in text(300),
        method in text(70_000),
        body in bytes(70_000),
        deadline_ms in any::<u32>(),
        pairs in trace(MAX_TRACE_PAIRS),
        cut in any::<prop::sample::Index>(),
    ) {
        let load = PublishLoad {
            jid: &jid, to: &to, method: &method, body: &body, deadline_ms, trace: carrier(&pairs),
        };
        let enc = encode(&load);
        prop_assert_eq!(enc[0], if pairs.is_empty() { 0x95 } else { 0x96 });
        prop_assert_eq!(load::decode::<PublishLoad>(&enc).expect("decode"), load);
        assert_only_whole_decodes(&enc, cut, |b| load::decode::<PublishLoad>(b).is_ok())?;
    }

    #[test]
    fn prop_reply_load_round_trips(
        id in any::<u64>(),
        status in any::<u8>(),
        body in bytes(70_000),
        cut in any::<prop::sample::Index>(),
    ) {
        let load = ReplyLoad { id, status, body: &body };
        let enc = encode(&load);
        prop_assert_eq!(enc[0], 0x93);
        prop_assert_eq!(load::decode::<ReplyLoad>(&enc).expect("decode"), load);
        assert_only_whole_decodes(&enc, cut, |b| load::decode::<ReplyLoad>(b).is_ok())?;
    }

    /// Carriers of more than `MAX_TRACE_PAIRS` pairs encode (the limit is
    /// the receiver's) but never decode, in requests and publishes alike.
    #[test]
    fn prop_carriers_over_the_limit_are_refused(
        pairs in prop::collection::vec((text(8), text(8)), MAX_TRACE_PAIRS + 1..=3 * MAX_TRACE_PAIRS),
    ) {
        let request = RequestLoad { id: 1, method: "m", body: b"", deadline_ms: 0, trace: carrier(&pairs), retry: &[] };
        let enc = encode(&request);
        let r = load::decode::<RequestLoad>(&enc);
        prop_assert!(matches!(r, Err(WireError::BadLoad(_))), "{:?}", r);
        let publish = PublishLoad { jid: "1", to: "*", method: "m", body: b"", deadline_ms: 0, trace: carrier(&pairs) };
        let enc = encode(&publish);
        let r = load::decode::<PublishLoad>(&enc);
        prop_assert!(matches!(r, Err(WireError::BadLoad(_))), "{:?}", r);
    }
}
