//! Arbitrary carrier pairs through W3C extraction; a valid result must
//! survive inject → extract unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealrpc::context::{extract, inject, Extracted};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text.split('\n').filter_map(|l| l.split_once(':')).collect();
    if let Extracted::Valid(ctx) = extract(&pairs) {
        let mut carrier = Vec::new();
        inject(&ctx.parent, &ctx.state, &mut carrier);
        assert_eq!(extract(&carrier), Extracted::Valid(ctx));
    }
});
