//! Envelope seal/open: round trips, tampering (every byte flip, every truncation), keys, kinds and size limits.
#[path = "support/envelope.rs"]
mod fixtures;
use bytes::BytesMut;
use fixtures::*;
use sealrpc::error::WireError;
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::load::{self, Carrier};
use sealrpc::wire::{Header, Kind, Opener, ReplyLoad, RequestLoad, Sealer};
use std::sync::Arc;

// ---------------------------------------------------------------- round trips

#[test]
fn request_round_trips_through_seal_open_decode() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [1; 16]);
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let load = RequestLoad {
        retry: &[],
        id: 42,
        method: "test.echo",
        body: b"hello, sealed world",
        deadline_ms: 1500,
        trace: Carrier(vec![("traceparent", tp), ("tracestate", "a=b")]),
    };
    let env = seal_req(&mut sealer, T0, &load);
    let h = header_of(&env);
    assert_eq!(
        h,
        Header {
            kind: Kind::Request,
            key_id: key.id(),
            salt: [1; 16],
            seq: 0,
            time_ms: T0
        }
    );
    // The body never travels in clear.
    assert!(!env.windows(load.body.len()).any(|w| w == load.body));
    let plain = open_copy(&mut op, &env, T0).expect("open");
    let got: RequestLoad = load::decode(&plain).expect("decode");
    assert_eq!(got, load);
}

#[test]
fn reply_round_trips_for_every_status() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [2; 16]);
    let mut op = opener_for(&[&key], &reg, Kind::Reply);
    for (i, status) in [0u8, 1, 2, 3].into_iter().enumerate() {
        let body = vec![status; i * 100];
        let load = ReplyLoad {
            id: u64::MAX - i as u64,
            status,
            body: &body,
        };
        let env = seal_with(&mut sealer, Kind::Reply, T0, MAX, &load).expect("seal");
        assert_eq!(header_of(&env).kind, Kind::Reply);
        assert_eq!(header_of(&env).seq, i as u64);
        let plain = open_copy(&mut op, &env, T0).expect("open");
        let got: ReplyLoad = load::decode(&plain).expect("decode");
        assert_eq!(got, load);
    }
}

#[test]
fn empty_body_and_empty_method_round_trip() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [3; 16]);
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let load = RequestLoad {
        retry: &[],
        id: 0,
        method: "",
        body: b"",
        deadline_ms: 0,
        trace: Carrier::default(),
    };
    let env = seal_req(&mut sealer, T0, &load);
    let plain = open_copy(&mut op, &env, T0).expect("open");
    assert_eq!(load::decode::<RequestLoad>(&plain).expect("decode"), load);

    let mut rsealer = Sealer::new(key.clone(), [4; 16]);
    let mut rop = opener_for(&[&key], &reg, Kind::Reply);
    let reply = ReplyLoad {
        id: 9,
        status: 0,
        body: b"",
    };
    let env = seal_with(&mut rsealer, Kind::Reply, T0, MAX, &reply).expect("seal");
    let plain = open_copy(&mut rop, &env, T0).expect("open");
    assert_eq!(load::decode::<ReplyLoad>(&plain).expect("decode"), reply);
}

#[test]
fn body_filling_the_frame_limit_exactly_round_trips_and_one_more_byte_is_too_large() {
    let key = key_a();
    let reg = registry();
    // MessagePack overhead of a request with a bin32 body is constant: measure it.
    let probe = vec![0u8; 70_000];
    let mut enc = BytesMut::new();
    load::encode(
        &RequestLoad {
            retry: &[],
            id: 1,
            method: "bulk",
            body: &probe,
            deadline_ms: 0,
            trace: Carrier::default(),
        },
        &mut enc,
    )
    .expect("encode");
    let overhead = enc.len() - probe.len();
    let body_len = BIG_MAX - MIN_ENVELOPE - overhead;
    let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
    let load = RequestLoad {
        retry: &[],
        id: 1,
        method: "bulk",
        body: &body,
        deadline_ms: 0,
        trace: Carrier::default(),
    };

    let mut sealer = Sealer::new(key.clone(), [5; 16]);
    let mut out = BytesMut::new();
    sealer
        .seal(Kind::Request, T0, BIG_MAX, &mut out, |b| {
            load::encode(&load, b)
        })
        .expect("seal at the limit");
    assert_eq!(out.len(), BIG_MAX, "the envelope fills the limit exactly");

    let mut op = Opener::new(ring(&[&key]), reg.clone(), Kind::Request, TTL, BIG_MAX);
    let opened = op.open(&mut out, T0).expect("open at the limit");
    let got: RequestLoad = load::decode(&out[opened.load]).expect("decode");
    assert_eq!(got.body.len(), body_len);
    assert!(got.body == &body[..]);

    // One more body byte: refused, buffer untouched, no nonce consumed.
    let body2 = vec![7u8; body_len + 1];
    let load2 = RequestLoad {
        retry: &[],
        id: 2,
        method: "bulk",
        body: &body2,
        deadline_ms: 0,
        trace: Carrier::default(),
    };
    let mut out2 = BytesMut::from(&b"keep"[..]);
    let err = sealer
        .seal(Kind::Request, T0, BIG_MAX, &mut out2, |b| {
            load::encode(&load2, b)
        })
        .expect_err("one byte over");
    assert_eq!(
        err,
        WireError::TooLarge {
            len: BIG_MAX + 1,
            max: BIG_MAX
        }
    );
    assert_eq!(&out2[..], b"keep");
    assert_eq!(sealer.sequence(), 1);
}

// ---------------------------------------------------------------- tampering

/// Flips every byte of `env` with 0x01 and with 0x80, opening each copy on
/// `op` at `T0`, and checks the exact typed error each position must give.
/// `seen` holds the sequences `op` has already accepted from this session.
fn assert_every_flip_rejected(op: &mut Opener, env: &[u8], seen: &[u64], expect: Kind) {
    for pos in 0..env.len() {
        for mask in [0x01u8, 0x80] {
            let mut f = env.to_vec();
            f[pos] ^= mask;
            let flipped = f.clone();
            let err = match op.open(&mut f, T0) {
                Ok(o) => panic!("flip {mask:#04x} at byte {pos} was accepted: {o:?}"),
                Err(e) => e,
            };
            let want = flip_error(&flipped, pos, expect, seen);
            assert_eq!(err, want, "flip {mask:#04x} at byte {pos}");
        }
    }
}

#[test]
fn every_single_byte_flip_of_a_fresh_session_is_rejected_and_does_not_poison_state() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [6; 16]);
    let load = request(7, "flip.me", b"0123456789abcdef");
    let env = seal_req(&mut sealer, T0, &load);
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    assert_every_flip_rejected(&mut op, &env, &[], Kind::Request);
    assert!(reg.is_empty(), "no tampered envelope may claim a session");
    let plain = open_copy(&mut op, &env, T0).expect("untampered envelope still accepted");
    assert_eq!(load::decode::<RequestLoad>(&plain).expect("decode"), load);
    assert_eq!(reg.len(), 1);
    op.close(T0);
}

#[test]
fn every_single_byte_flip_within_an_established_session_is_rejected() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [7; 16]);
    let reply0 = ReplyLoad {
        id: 1,
        status: 0,
        body: b"first",
    };
    let reply1 = ReplyLoad {
        id: 2,
        status: 1,
        body: b"second reply body",
    };
    let env0 = seal_with(&mut sealer, Kind::Reply, T0, MAX, &reply0).expect("seal");
    let env1 = seal_with(&mut sealer, Kind::Reply, T0, MAX, &reply1).expect("seal");
    let mut op = opener_for(&[&key], &reg, Kind::Reply);
    open_copy(&mut op, &env0, T0).expect("establish the session");
    assert_every_flip_rejected(&mut op, &env1, &[0], Kind::Reply);
    let plain = open_copy(&mut op, &env1, T0).expect("untampered envelope still accepted");
    assert_eq!(load::decode::<ReplyLoad>(&plain).expect("decode"), reply1);
    assert_eq!(
        open_copy(&mut op, &env1, T0),
        Err(WireError::Replayed { seq: 1 })
    );
    op.close(T0);
}

#[test]
fn every_truncation_is_rejected_without_panic() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [8; 16]);
    let load = request(3, "trunc", &[0xab; 40]);
    let env = seal_req(&mut sealer, T0, &load);
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    for len in 0..env.len() {
        let got = open_copy(&mut op, &env[..len], T0);
        let want = if len < MIN_ENVELOPE {
            WireError::Truncated {
                len,
                min: MIN_ENVELOPE,
            }
        } else {
            WireError::AuthenticationFailed
        };
        assert_eq!(got, Err(want), "truncated to {len} bytes");
    }
    // Garbage of every short length: bad magic is only reported once the
    // frame is long enough to be an envelope.
    for len in 0..=MIN_ENVELOPE {
        let got = open_copy(&mut op, &vec![b'X'; len], T0);
        let want = if len < MIN_ENVELOPE {
            WireError::Truncated {
                len,
                min: MIN_ENVELOPE,
            }
        } else {
            WireError::BadMagic
        };
        assert_eq!(got, Err(want), "{len} bytes of garbage");
    }
    assert!(reg.is_empty());
    let plain = open_copy(&mut op, &env, T0).expect("whole envelope still accepted");
    assert_eq!(load::decode::<RequestLoad>(&plain).expect("decode"), load);
    op.close(T0);
}

#[test]
fn extended_envelope_is_rejected() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [9; 16]);
    let env = seal_req(&mut sealer, T0, &request(1, "m", b"abc"));
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let mut longer = env.clone();
    longer.push(0);
    assert_eq!(
        open_copy(&mut op, &longer, T0),
        Err(WireError::AuthenticationFailed)
    );
    assert!(open_copy(&mut op, &env, T0).is_ok());
    op.close(T0);
}

// ---------------------------------------------------------------- keys

#[test]
fn envelope_under_an_unknown_key_is_refused_by_id() {
    let (a, b) = (key_a(), key_b());
    assert_ne!(a.id(), b.id());
    let reg = registry();
    let mut sealer = Sealer::new(a.clone(), [10; 16]);
    let env = seal_req(&mut sealer, T0, &request(1, "m", b"x"));
    let mut op = opener_for(&[&b], &reg, Kind::Request);
    assert_eq!(
        open_copy(&mut op, &env, T0),
        Err(WireError::UnknownKey(a.id()))
    );
    let mut empty = Opener::new(
        Arc::new(Keyring::default()),
        reg.clone(),
        Kind::Request,
        TTL,
        MAX,
    );
    assert_eq!(
        open_copy(&mut empty, &env, T0),
        Err(WireError::UnknownKey(a.id()))
    );
    assert!(reg.is_empty());
}

#[test]
fn keyring_with_two_keys_accepts_both_during_rotation() {
    let (a, b) = (key_a(), key_b());
    let reg = registry();
    let mut op = opener_for(&[&a, &b], &reg, Kind::Request);
    let mut sa = Sealer::new(a.clone(), [11; 16]);
    let mut sb = Sealer::new(b.clone(), [12; 16]);
    for i in 0..3u64 {
        let ea = seal_req(&mut sa, T0, &request(i, "a", b"from a"));
        let eb = seal_req(&mut sb, T0, &request(i, "b", b"from b"));
        assert_eq!(header_of(&ea).key_id, a.id());
        assert_eq!(header_of(&eb).key_id, b.id());
        let pa = open_copy(&mut op, &ea, T0).expect("key a accepted");
        let pb = open_copy(&mut op, &eb, T0).expect("key b accepted");
        assert_eq!(
            load::decode::<RequestLoad>(&pa).expect("decode").method,
            "a"
        );
        assert_eq!(
            load::decode::<RequestLoad>(&pb).expect("decode").method,
            "b"
        );
    }
    assert_eq!(reg.len(), 2);
    op.close(T0);

    // Same salt, different key: distinct sessions keyed by key id too.
    let reg2 = registry();
    let mut op2 = opener_for(&[&a, &b], &reg2, Kind::Request);
    let mut sb_same_salt = Sealer::new(b.clone(), [11; 16]);
    let e = seal_req(&mut sb_same_salt, T0, &request(1, "b", b""));
    assert!(open_copy(&mut op2, &e, T0).is_ok());
    op2.close(T0);
}

#[test]
fn keyring_insert_replaces_a_key_with_the_same_id() {
    let a = key_a();
    let mut r = Keyring::single(a.clone());
    r.insert(key_a());
    r.insert(key_b());
    assert_eq!(r.get(a.id()).map(Key::id), Some(a.id()));
    assert_eq!(r.get(key_b().id()).map(Key::id), Some(key_b().id()));
    let unknown = (0..)
        .find(|i| *i != a.id() && *i != key_b().id())
        .expect("an unused id");
    assert!(r.get(unknown).is_none());
    // Key ids are derived from the bytes: same bytes, same id; other bytes, other id.
    assert_eq!(Key::from_bytes([0x11; 32]).id(), a.id());
    assert_ne!(Key::from_bytes([0x12; 32]).id(), a.id());
}

// ---------------------------------------------------------------- kind

#[test]
fn request_given_to_a_reply_opener_is_wrong_kind_and_vice_versa() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [17; 16]);
    let req = seal_req(&mut sealer, T0, &request(1, "m", b""));
    let mut replies = opener_for(&[&key], &reg, Kind::Reply);
    assert_eq!(
        open_copy(&mut replies, &req, T0),
        Err(WireError::WrongKind {
            expected: "reply",
            got: "request"
        })
    );
    let rep = seal_with(
        &mut sealer,
        Kind::Reply,
        T0,
        MAX,
        &ReplyLoad {
            id: 1,
            status: 0,
            body: b"",
        },
    )
    .expect("seal");
    let mut requests = opener_for(&[&key], &reg, Kind::Request);
    assert_eq!(
        open_copy(&mut requests, &rep, T0),
        Err(WireError::WrongKind {
            expected: "request",
            got: "reply"
        })
    );
    // A request relabelled as a reply (kind byte rewritten) fails authentication.
    let mut relabelled = req.clone();
    relabelled[3] = Kind::Reply as u8;
    assert_eq!(
        open_copy(&mut replies, &relabelled, T0),
        Err(WireError::AuthenticationFailed)
    );
    assert!(reg.is_empty());
    assert!(open_copy(&mut requests, &req, T0).is_ok());
    requests.close(T0);
}

// ---------------------------------------------------------------- size limits

#[test]
fn sealing_over_the_limit_is_too_large_and_leaves_the_buffer_and_sequence_unchanged() {
    let key = key_a();
    let mut sealer = Sealer::new(key.clone(), [18; 16]);
    let mut out = BytesMut::from(&b"earlier frames"[..]);
    let body = vec![1u8; 1000];
    let load = request(1, "big", &body);
    let mut enc = BytesMut::new();
    load::encode(&load, &mut enc).expect("encode");
    let need = MIN_ENVELOPE + enc.len();
    let err = sealer
        .seal(Kind::Request, T0, need - 1, &mut out, |b| {
            load::encode(&load, b)
        })
        .expect_err("over the limit");
    assert_eq!(
        err,
        WireError::TooLarge {
            len: need,
            max: need - 1
        }
    );
    assert_eq!(&out[..], b"earlier frames");
    assert_eq!(sealer.sequence(), 0, "no nonce consumed");

    // A failing load writer also leaves everything as it was.
    let err = sealer
        .seal(Kind::Request, T0, MAX, &mut out, |b| {
            b.extend_from_slice(b"partial");
            Err(WireError::BadLoad("writer failed"))
        })
        .expect_err("writer fails");
    assert_eq!(err, WireError::BadLoad("writer failed"));
    assert_eq!(&out[..], b"earlier frames");
    assert_eq!(sealer.sequence(), 0);

    // Exactly at the limit works and uses sequence 0.
    sealer
        .seal(Kind::Request, T0, need, &mut out, |b| {
            load::encode(&load, b)
        })
        .expect("at the limit");
    assert_eq!(out.len(), b"earlier frames".len() + need);
    assert_eq!(&out[..14], b"earlier frames");
    assert_eq!(header_of(&out[14..]).seq, 0);
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let plain = open_copy(&mut op, &out[14..], T0).expect("open");
    assert_eq!(load::decode::<RequestLoad>(&plain).expect("decode"), load);
    op.close(T0);
}

#[test]
fn opening_a_frame_over_the_limit_is_too_large_before_any_decryption() {
    let key = key_a();
    let reg = registry();
    let small = 200;
    let mut small_op = Opener::new(ring(&[&key]), reg.clone(), Kind::Request, TTL, small);
    // Garbage just over the limit: the length check comes before parsing.
    let mut junk = vec![b'X'; small + 1];
    assert_eq!(
        small_op.open(&mut junk, T0),
        Err(WireError::TooLarge {
            len: small + 1,
            max: small
        })
    );

    // A valid envelope over the opener's limit: refused untouched (not
    // decrypted in place) and no session claimed.
    let mut sealer = Sealer::new(key.clone(), [19; 16]);
    let body = vec![0x5a; 300];
    let env = seal_req(&mut sealer, T0, &request(1, "m", &body));
    assert!(env.len() > small);
    let mut frame = env.clone();
    assert_eq!(
        small_op.open(&mut frame, T0),
        Err(WireError::TooLarge {
            len: env.len(),
            max: small
        })
    );
    assert_eq!(frame, env, "frame not decrypted in place");
    assert!(reg.is_empty(), "no session claimed");
    // Even an expired or wrong-key frame over the limit is TooLarge first.
    let mut other = Sealer::new(key_b(), [20; 16]);
    let env_b = seal_req(&mut other, 0, &request(1, "m", &body));
    assert_eq!(
        open_copy(&mut small_op, &env_b, T0),
        Err(WireError::TooLarge {
            len: env_b.len(),
            max: small
        })
    );
    // The same envelope is fine for an opener with a larger limit.
    let mut big_op = opener_for(&[&key], &reg, Kind::Request);
    assert!(open_copy(&mut big_op, &env, T0).is_ok());
    big_op.close(T0);
}
