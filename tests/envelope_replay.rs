//! Envelope replay defence, TTL, nonce uniqueness, key-use limits and alerts.
#[path = "support/envelope.rs"]
mod fixtures;
use bytes::BytesMut;
use fixtures::*;
use sealrpc::error::WireError;
use sealrpc::wire::header::{alert_frame, parse_alert, AlertCode, ALERT_KIND, MAGIC, VERSION};
use sealrpc::wire::load::{self, Carrier};
use sealrpc::wire::{
    Header, Kind, Opener, ReplyLoad, RequestLoad, Sealer, SealerLimits, SessionRegistry, HEADER_LEN,
};
use std::collections::HashSet;
use std::sync::Arc;

// ---------------------------------------------------------------- replay

#[test]
fn same_envelope_twice_on_one_opener_is_replayed() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [13; 16]);
    let e0 = seal_req(&mut sealer, T0, &request(1, "m", b"0"));
    let e1 = seal_req(&mut sealer, T0, &request(2, "m", b"1"));
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    assert!(open_copy(&mut op, &e0, T0).is_ok());
    assert_eq!(
        open_copy(&mut op, &e0, T0),
        Err(WireError::Replayed { seq: 0 })
    );
    assert!(open_copy(&mut op, &e1, T0).is_ok());
    assert_eq!(
        open_copy(&mut op, &e1, T0),
        Err(WireError::Replayed { seq: 1 })
    );
    assert_eq!(
        open_copy(&mut op, &e0, T0),
        Err(WireError::Replayed { seq: 0 })
    );
    op.close(T0);
}

#[test]
fn session_seen_on_another_connection_is_refused_until_twice_the_ttl_after_close() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [14; 16]);
    let e0 = seal_req(&mut sealer, T0, &request(1, "m", b"0"));
    let e1 = seal_req(&mut sealer, T0, &request(2, "m", b"1"));
    // An envelope of the same session stamped just at the end of retention.
    let late = seal_req(&mut sealer, T0 + 2 * TTL, &request(3, "m", b"2"));

    let mut a = opener_for(&[&key], &reg, Kind::Request);
    let mut b = opener_for(&[&key], &reg, Kind::Request);
    assert!(open_copy(&mut a, &e0, T0).is_ok());
    // Cross-connection replay of the same envelope, and of a new one in the session.
    assert_eq!(open_copy(&mut b, &e0, T0), Err(WireError::SessionReused));
    assert_eq!(open_copy(&mut b, &e1, T0), Err(WireError::SessionReused));
    // B's refusal did not disturb A.
    assert!(open_copy(&mut a, &e1, T0).is_ok());
    // B still works for sessions of its own.
    let mut other = Sealer::new(key.clone(), [15; 16]);
    assert!(open_copy(&mut b, &seal_req(&mut other, T0, &request(1, "m", b"")), T0).is_ok());

    a.close(T0);
    // Released, but remembered: still refused within 2*TTL.
    let mut c = opener_for(&[&key], &reg, Kind::Request);
    assert_eq!(open_copy(&mut c, &e0, T0), Err(WireError::SessionReused));
    assert_eq!(
        open_copy(&mut c, &e1, T0 + TTL),
        Err(WireError::SessionReused)
    );
    assert_eq!(
        open_copy(&mut c, &late, T0 + 2 * TTL - 1),
        Err(WireError::SessionReused)
    );
    // Once retention passed, the time check alone refuses old envelopes...
    assert_eq!(
        open_copy(&mut c, &e0, T0 + 2 * TTL),
        Err(WireError::Expired {
            age_ms: 2 * TTL,
            ttl_ms: TTL
        })
    );
    // Retention includes its last millisecond: an envelope this session
    // sent at T0 + TTL would still pass the time check at T0 + 2*TTL...
    assert_eq!(
        open_copy(&mut c, &late, T0 + 2 * TTL),
        Err(WireError::SessionReused)
    );
    // ...and only after it may the salt be claimed again (by an envelope
    // never accepted before: `late` was stamped in the future until now).
    assert!(open_copy(&mut c, &late, T0 + 2 * TTL + 1).is_ok());
    c.close(T0 + 2 * TTL);
    b.close(T0);
}

#[test]
fn out_of_order_within_the_window_is_accepted_and_older_than_the_window_is_refused() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [16; 16]);
    let envs: Vec<Vec<u8>> = (0..1200u64)
        .map(|i| seal_req(&mut sealer, T0, &request(i, "w", b"")))
        .collect();
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    for i in [5usize, 3, 4, 0, 2, 1] {
        assert!(open_copy(&mut op, &envs[i], T0).is_ok(), "seq {i}");
    }
    for i in 0..6u64 {
        assert_eq!(
            open_copy(&mut op, &envs[i as usize], T0),
            Err(WireError::Replayed { seq: i })
        );
    }
    // Jump ahead: the window is the 1024 sequences ending at the highest seen.
    assert!(open_copy(&mut op, &envs[1100], T0).is_ok());
    assert!(
        open_copy(&mut op, &envs[1100 - 1023], T0).is_ok(),
        "1023 behind: inside"
    );
    assert_eq!(
        open_copy(&mut op, &envs[1100 - 1024], T0),
        Err(WireError::Replayed { seq: 76 })
    );
    assert_eq!(
        open_copy(&mut op, &envs[1100 - 1025], T0),
        Err(WireError::Replayed { seq: 75 })
    );
    assert_eq!(
        open_copy(&mut op, &envs[6], T0),
        Err(WireError::Replayed { seq: 6 })
    );
    // Unseen sequences inside the window, in any order, then never again.
    for i in [1099usize, 500, 1000, 78, 1199, 1150, 176] {
        assert!(open_copy(&mut op, &envs[i], T0).is_ok(), "seq {i}");
        assert_eq!(
            open_copy(&mut op, &envs[i], T0),
            Err(WireError::Replayed { seq: i as u64 })
        );
    }
    // 1199 is now the highest: 176 = 1199 - 1023 was accepted; 175 is out.
    assert_eq!(
        open_copy(&mut op, &envs[175], T0),
        Err(WireError::Replayed { seq: 175 })
    );
    op.close(T0);
}

#[test]
fn a_fifth_session_retires_the_oldest_instead_of_killing_the_connection() {
    let key = key_a();
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let mut sealers: Vec<Sealer> = (0..4u8)
        .map(|s| Sealer::new(key.clone(), [100 + s; 16]))
        .collect();
    for sealer in &mut sealers {
        assert!(open_copy(&mut op, &seal_req(sealer, T0, &request(1, "m", b"")), T0).is_ok());
    }
    // A sender that rekeyed a fourth time: its new session is adopted...
    let mut fifth = Sealer::new(key.clone(), [104; 16]);
    assert!(open_copy(
        &mut op,
        &seal_req(&mut fifth, T0, &request(1, "m", b"")),
        T0
    )
    .is_ok());
    assert_eq!(reg.len(), 5, "four live sessions and one retired");
    // ...the oldest is retired: its envelopes are refused from now on...
    let old = seal_req(&mut sealers[0], T0, &request(2, "m", b""));
    assert_eq!(open_copy(&mut op, &old, T0), Err(WireError::SessionReused));
    // ...and the others keep working.
    let newer = seal_req(&mut sealers[3], T0, &request(2, "m", b""));
    assert!(open_copy(&mut op, &newer, T0).is_ok());
    op.close(T0);
}

#[test]
fn envelopes_from_before_the_receiver_started_are_refused() {
    let key = key_a();
    let reg = Arc::new(SessionRegistry::new(TTL, 1024).with_not_before(T0));
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let mut sealer = Sealer::new(key.clone(), [9; 16]);
    // Captured one second before a restart, replayed right after it.
    let before = seal_req(&mut sealer, T0 - 1_000, &request(1, "m", b""));
    assert_eq!(
        open_copy(&mut op, &before, T0 + 10),
        Err(WireError::PredatesReceiver)
    );
    let after = seal_req(&mut sealer, T0, &request(2, "m", b""));
    assert!(open_copy(&mut op, &after, T0 + 10).is_ok());
    op.close(T0);
}

#[test]
fn full_registry_refuses_new_sessions() {
    let key = key_a();
    let reg = Arc::new(SessionRegistry::new(TTL, 1));
    let mut op1 = opener_for(&[&key], &reg, Kind::Request);
    let mut op2 = opener_for(&[&key], &reg, Kind::Request);
    let mut s1 = Sealer::new(key.clone(), [30; 16]);
    let mut s2 = Sealer::new(key.clone(), [31; 16]);
    assert!(open_copy(&mut op1, &seal_req(&mut s1, T0, &request(1, "m", b"")), T0).is_ok());
    let e2 = seal_req(&mut s2, T0, &request(1, "m", b""));
    assert_eq!(
        open_copy(&mut op2, &e2, T0),
        Err(WireError::RegistryFull(1))
    );
    op1.close(T0);
    let e2_late = seal_req(&mut s2, T0 + 2 * TTL - 1, &request(2, "m", b""));
    assert_eq!(
        open_copy(&mut op2, &e2_late, T0 + 2 * TTL - 1),
        Err(WireError::RegistryFull(1)),
        "the released session is retained for 2*TTL"
    );
    let e2b = seal_req(&mut s2, T0 + 2 * TTL + 1, &request(3, "m", b""));
    assert!(
        open_copy(&mut op2, &e2b, T0 + 2 * TTL + 1).is_ok(),
        "retired entries are purged"
    );
    op2.close(T0 + 2 * TTL);
}

// ---------------------------------------------------------------- time

#[test]
fn envelope_older_than_the_ttl_is_expired_and_the_boundary_is_accepted() {
    let key = key_a();
    let reg = registry();
    let mut s1 = Sealer::new(key.clone(), [21; 16]);
    let mut s2 = Sealer::new(key.clone(), [22; 16]);
    let e1 = seal_req(&mut s1, T0, &request(1, "m", b""));
    let e2 = seal_req(&mut s2, T0, &request(1, "m", b""));
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    assert_eq!(
        open_copy(&mut op, &e1, T0 + TTL + 1),
        Err(WireError::Expired {
            age_ms: TTL + 1,
            ttl_ms: TTL
        })
    );
    assert_eq!(
        open_copy(&mut op, &e1, T0 + 10 * TTL),
        Err(WireError::Expired {
            age_ms: 10 * TTL,
            ttl_ms: TTL
        })
    );
    assert!(reg.is_empty(), "an expired envelope claims nothing");
    assert!(
        open_copy(&mut op, &e2, T0 + TTL).is_ok(),
        "exactly TTL old is accepted"
    );
    assert!(
        open_copy(&mut op, &e1, T0).is_ok(),
        "the expired envelope was not recorded"
    );
    op.close(T0);
}

#[test]
fn envelope_too_far_in_the_future_is_refused() {
    let key = key_a();
    let reg = registry();
    let mut s1 = Sealer::new(key.clone(), [23; 16]);
    let mut s2 = Sealer::new(key.clone(), [24; 16]);
    let ahead = seal_req(&mut s1, T0 + TTL + 1, &request(1, "m", b""));
    let edge = seal_req(&mut s2, T0 + TTL, &request(1, "m", b""));
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    assert_eq!(
        open_copy(&mut op, &ahead, T0),
        Err(WireError::FromFuture {
            ahead_ms: TTL + 1,
            ttl_ms: TTL
        })
    );
    assert!(
        open_copy(&mut op, &edge, T0).is_ok(),
        "exactly TTL ahead is accepted"
    );
    // The clock catches up: the same envelope is now fine.
    assert!(open_copy(&mut op, &ahead, T0 + 1).is_ok());
    op.close(T0);
}

#[test]
fn receiver_clock_near_zero_does_not_underflow() {
    let key = key_a();
    let reg = registry();
    let mut sealer = Sealer::new(key.clone(), [25; 16]);
    let env = seal_req(&mut sealer, 0, &request(1, "m", b""));
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    assert!(open_copy(&mut op, &env, 0).is_ok());
    let mut s2 = Sealer::new(key.clone(), [26; 16]);
    let far = seal_req(&mut s2, T0, &request(1, "m", b""));
    assert_eq!(
        open_copy(&mut op, &far, 5),
        Err(WireError::FromFuture {
            ahead_ms: T0 - 5,
            ttl_ms: TTL
        })
    );
    op.close(0);
}

// ---------------------------------------------------------------- nonces and limits

fn ciphertext(env: &[u8]) -> &[u8] {
    &env[HEADER_LEN..]
}

#[test]
fn ten_thousand_envelopes_use_distinct_nonces_and_ciphertexts() {
    let key = key_a();
    let mut sealer = Sealer::new(key.clone(), [27; 16]);
    let load = request(1, "same", b"the very same load every time");
    let mut nonces = HashSet::new();
    let mut cts = HashSet::new();
    for i in 0..10_000u64 {
        let env = seal_req(&mut sealer, T0, &load);
        let h = header_of(&env);
        assert_eq!(h.seq, i);
        assert_eq!(h.salt, [27; 16]);
        assert!(
            nonces.insert((h.salt, h.seq)),
            "nonce ({:?}, {}) reused",
            h.salt,
            h.seq
        );
        assert!(
            cts.insert(ciphertext(&env).to_vec()),
            "ciphertext repeated at {i}"
        );
    }
    assert_eq!(sealer.sequence(), 10_000);
    assert_eq!(nonces.len(), 10_000);
    assert_eq!(cts.len(), 10_000);
}

#[test]
fn sealers_with_different_salts_produce_different_ciphertexts() {
    let key = key_a();
    let load = request(1, "same", b"same load");
    let mut s1 = Sealer::new(key.clone(), [28; 16]);
    let mut s2 = Sealer::new(key.clone(), [29; 16]);
    let mut s1_twin = Sealer::new(key.clone(), [28; 16]);
    for _ in 0..3 {
        let e1 = seal_req(&mut s1, T0, &load);
        let e2 = seal_req(&mut s2, T0, &load);
        let twin = seal_req(&mut s1_twin, T0, &load);
        assert_eq!(header_of(&e1).seq, header_of(&e2).seq);
        assert_ne!(
            ciphertext(&e1),
            ciphertext(&e2),
            "same seq and load, different salt"
        );
        // Control: the construction is deterministic, so the comparison above
        // really detects a shared derived key.
        assert_eq!(e1, twin);
    }
}

#[test]
fn sealer_limits_soft_rekey_and_hard_exhaustion() {
    let key = key_a();
    let limits = SealerLimits { soft: 3, hard: 5 };
    let mut sealer = Sealer::with_limits(key.clone(), [40; 16], limits);
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let load = request(1, "m", b"x");
    for i in 0..5u64 {
        assert_eq!(sealer.needs_rekey(), i >= 3, "before sealing seq {i}");
        let env = seal_req(&mut sealer, T0, &load);
        assert_eq!(header_of(&env).seq, i);
        assert!(open_copy(&mut op, &env, T0).is_ok());
    }
    assert!(sealer.needs_rekey());
    let mut out = BytesMut::from(&b"queued"[..]);
    assert_eq!(
        sealer.seal(Kind::Request, T0, MAX, &mut out, |b| load::encode(&load, b)),
        Err(WireError::KeyExhausted(5))
    );
    assert_eq!(&out[..], b"queued");
    assert_eq!(sealer.sequence(), 5);

    sealer.rekey([41; 16]);
    assert_eq!(sealer.sequence(), 0);
    assert!(!sealer.needs_rekey());
    let env = seal_req(&mut sealer, T0, &load);
    let h = header_of(&env);
    assert_eq!((h.salt, h.seq), ([41; 16], 0));
    assert!(
        open_copy(&mut op, &env, T0).is_ok(),
        "the new session opens on the same connection"
    );
    assert_eq!(reg.len(), 2);
    op.close(T0);

    // hard == soft == 0: nothing can be sealed at all.
    let mut none = Sealer::with_limits(key.clone(), [42; 16], SealerLimits { soft: 0, hard: 0 });
    assert!(none.needs_rekey());
    assert_eq!(
        seal_with(&mut none, Kind::Request, T0, MAX, &load),
        Err(WireError::KeyExhausted(0))
    );
}

#[test]
fn default_limits_are_two_to_the_32_then_refuse_at_plus_2_to_the_20() {
    let d = SealerLimits::default();
    assert_eq!(d.soft, 1 << 32);
    assert_eq!(d.hard, (1 << 32) + (1 << 20));
    assert!(!Sealer::new(key_a(), [0; 16]).needs_rekey());
}

// ---------------------------------------------------------------- alerts

#[test]
fn alert_frames_surface_as_peer_alert() {
    let key = key_a();
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, Kind::Reply);
    for (code, n) in [(AlertCode::Refused, 1u8), (AlertCode::Malformed, 2)] {
        let frame = alert_frame(code);
        assert_eq!(frame, [MAGIC[0], MAGIC[1], VERSION, ALERT_KIND, n]);
        assert_eq!(parse_alert(&frame), Some(n));
        assert_eq!(open_copy(&mut op, &frame, T0), Err(WireError::PeerAlert(n)));
    }
    // Unknown codes are still alerts; near-misses are not.
    assert_eq!(
        open_copy(&mut op, &[b'S', b'R', 1, 0x7f, 200], T0),
        Err(WireError::PeerAlert(200))
    );
    for near in [
        &[b'S', b'R', 2, 0x7f, 1][..],
        &[b'S', b'R', 1, 0x7e, 1],
        &[b'S', b'r', 1, 0x7f, 1],
        &[b'S', b'R', 1, 0x7f],
    ] {
        assert_eq!(parse_alert(near), None, "{near:?}");
        assert_eq!(
            open_copy(&mut op, near, T0),
            Err(WireError::Truncated {
                len: near.len(),
                min: MIN_ENVELOPE
            })
        );
    }
    let mut six = alert_frame(AlertCode::Refused).to_vec();
    six.push(0);
    assert_eq!(parse_alert(&six), None);
    // An alert does not disturb the opener.
    let mut sealer = Sealer::new(key.clone(), [43; 16]);
    let env = seal_with(
        &mut sealer,
        Kind::Reply,
        T0,
        MAX,
        &ReplyLoad {
            id: 1,
            status: 0,
            body: b"ok",
        },
    )
    .expect("seal");
    assert!(open_copy(&mut op, &env, T0).is_ok());
    op.close(T0);
}

/// Regression: a forged header whose time is near u64::MAX reached an
/// overflowing `sent + ttl` before the tag check (a panic in debug builds).
#[test]
fn a_header_time_near_the_maximum_is_from_the_future_not_a_panic() {
    let key = key_a();
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    let mut head = [0u8; HEADER_LEN];
    Header {
        kind: Kind::Request,
        key_id: key.id(),
        salt: [1; 16],
        seq: 0,
        time_ms: u64::MAX,
    }
    .write(&mut head);
    let mut f = [0u8; MIN_ENVELOPE];
    f[..HEADER_LEN].copy_from_slice(&head);
    assert_eq!(
        op.open(&mut f, T0),
        Err(WireError::FromFuture {
            ahead_ms: u64::MAX - T0,
            ttl_ms: TTL
        })
    );
    // And an opener whose TTL is the maximum still accepts a fresh envelope.
    let mut wide = Opener::new(ring(&[&key]), registry(), Kind::Request, u64::MAX, MAX);
    let mut sealer = Sealer::new(key.clone(), [2; 16]);
    let env = seal_req(
        &mut sealer,
        T0,
        &RequestLoad {
            retry: &[],
            id: 1,
            method: "m",
            body: b"",
            deadline_ms: 0,
            trace: Carrier::default(),
        },
    );
    assert!(open_copy(&mut wide, &env, T0).is_ok());
}

/// With the channel's policy, one connection cannot mint sessions: a second
/// salt is accepted only after the first sealed its rekey threshold.
#[test]
fn a_new_session_before_the_rekey_threshold_is_refused() {
    let key = key_a();
    let reg = registry();
    let mut op = opener_for(&[&key], &reg, Kind::Request);
    op.require_rekey_after(3);
    let mut first = Sealer::new(key.clone(), [40; 16]);
    let mut second = Sealer::new(key.clone(), [41; 16]);
    assert!(open_copy(
        &mut op,
        &seal_req(&mut first, T0, &request(1, "m", b"")),
        T0
    )
    .is_ok());
    let early = seal_req(&mut second, T0, &request(2, "m", b""));
    assert_eq!(
        open_copy(&mut op, &early, T0),
        Err(WireError::PrematureSession)
    );
    assert_eq!(reg.len(), 1, "the premature salt was not claimed");
    for id in 3..5 {
        assert!(open_copy(
            &mut op,
            &seal_req(&mut first, T0, &request(id, "m", b"")),
            T0
        )
        .is_ok());
    }
    // The first session has now sealed 3 envelopes: a rekey is allowed.
    assert!(open_copy(&mut op, &early, T0).is_ok());
    op.close(T0);
}
