//! Arbitrary bytes as a decrypted load: request and reply decoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealrpc::wire::load::{decode, ReplyLoad, RequestLoad};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<RequestLoad>(data) {
        let _ = sealrpc::context::extract(&req.trace.0);
    }
    let _ = decode::<ReplyLoad>(data);
});
