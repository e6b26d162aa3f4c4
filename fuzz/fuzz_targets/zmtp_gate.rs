//! The ZMTP gate (`sealrpc_zmq::gate::ZmtpGate`) on arbitrary bytes, cut
//! into arbitrary chunks: never a panic, and the verdict does not depend on
//! how the bytes were cut (the gate keeps only its position). A refusal
//! comes from a header: everything the gate passed is well-formed ZMTP up
//! to that point, and a passed message is never over the limit.
//!
//! Input: `[limit, cut, bytes...]`: the message limit is `limit * 16`
//! bytes; `cut` seeds the chunk sizes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealrpc_zmq::gate::ZmtpGate;

fuzz_target!(|data: &[u8]| {
    let [limit, cut, bytes @ ..] = data else {
        return;
    };
    let max = u64::from(*limit) * 16;
    let mut whole = ZmtpGate::new(max);
    let verdict = whole.feed(bytes);
    let mut pieces = ZmtpGate::new(max);
    let mut rest = bytes;
    let mut seed = u32::from(*cut) | 1;
    let mut chunked = Ok(());
    while !rest.is_empty() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (seed >> 16) as usize % 97 + 1;
        let (now, later) = rest.split_at(n.min(rest.len()));
        chunked = pieces.feed(now);
        if chunked.is_err() {
            break;
        }
        rest = later;
    }
    assert_eq!(verdict, chunked, "the verdict depends on the cut");
    if verdict.is_ok() {
        assert_eq!(whole.commands(), pieces.commands());
        assert_eq!(whole.messages(), pieces.messages());
    }
});
