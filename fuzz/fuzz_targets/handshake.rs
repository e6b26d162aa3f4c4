//! Arbitrary bytes at each step of the Noise XX handshake: as frame 1 to a
//! responder, as frame 2 to an initiator that sent a valid frame 1, and as
//! frame 3 to a responder that answered a valid frame 1. Each must return a
//! typed error (or, for a well-formed frame 1, a frame 2), never panic.
//! The kind byte picks the step, so every seed frame reaches its own step
//! and mutations of it reach the others.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealrpc::wire::handshake::{Initiator, Responder, KIND_MSG2, KIND_MSG3};

const CLIENT: [u8; 32] = [0x11; 32];
const SERVER: [u8; 32] = [0x22; 32];

fuzz_target!(|data: &[u8]| {
    match data.get(3) {
        Some(&KIND_MSG2) => {
            if let Ok((init, _)) = Initiator::start(&CLIENT) {
                let _ = init.finish(data, b"web1");
            }
        }
        Some(&KIND_MSG3) => {
            let Ok((init, f1)) = Initiator::start(&CLIENT) else {
                return;
            };
            if let Ok((resp, _)) = Responder::respond(&SERVER, &f1, b"master") {
                let _ = resp.finish(data);
            }
            drop(init);
        }
        _ => {
            let _ = Responder::respond(&SERVER, data, b"master");
            // Frames of other kinds must also be refused by the other steps.
            if let Ok((init, _)) = Initiator::start(&CLIENT) {
                let _ = init.finish(data, b"web1");
            }
        }
    }
});
