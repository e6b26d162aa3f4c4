//! Key files: mode 0600, no overwrite, format errors, and keys never shown by Debug.
#[path = "support/envelope.rs"]
mod fixtures;
use fixtures::*;
use sealrpc::error::KeyError;
use sealrpc::keys::{Key, Keyring};
use sealrpc::wire::{Kind, Sealer};
use std::path::PathBuf;

// ---------------------------------------------------------------- key files

/// A fresh, empty scratch directory under cargo's per-target temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("envelope-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[test]
fn key_file_is_created_0600_refuses_overwrite_and_round_trips() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("save");
    let path = dir.join("k.key");
    let key = Key::generate();
    key.save_new(&path).expect("save");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));

    let before = std::fs::read(&path).expect("read");
    match Key::generate().save_new(&path) {
        Err(KeyError::Exists { path: p }) => assert!(p.contains("k.key")),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "file untouched"
    );

    let loaded = Key::load(&path).expect("load");
    assert_eq!(loaded.id(), key.id());
    // The loaded key really is the same key: it opens what the original sealed.
    let reg = registry();
    let mut op = opener_for(&[&loaded], &reg, Kind::Request);
    let mut sealer = Sealer::new(key.clone(), [44; 16]);
    assert!(open_copy(
        &mut op,
        &seal_req(&mut sealer, T0, &request(1, "m", b"k")),
        T0
    )
    .is_ok());
    op.close(T0);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn key_file_with_known_bytes_loads_with_surrounding_whitespace() {
    let dir = scratch("known");
    let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 3);
    let path = dir.join("k.key");
    std::fs::write(&path, format!("  \n{}\r\n\n", hex::encode(bytes))).expect("write");
    assert_eq!(
        Key::load(&path).expect("load").id(),
        Key::from_bytes(bytes).id()
    );
    std::fs::write(&path, hex::encode_upper(bytes)).expect("write");
    assert_eq!(
        Key::load(&path).expect("load upper-case").id(),
        Key::from_bytes(bytes).id()
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn malformed_key_files_are_format_errors() {
    let dir = scratch("bad");
    let good = hex::encode([0xa5u8; 32]);
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("blank", "  \n\t\n".into()),
        ("short", good[..62].to_owned()),
        ("odd", good[..63].to_owned()),
        ("long", format!("{good}00")),
        ("nonhex", format!("{}zz", &good[..62])),
        ("spaced", format!("{} {}", &good[..32], &good[32..])),
        ("prefixed", format!("0x{}", &good[..62])),
    ];
    for (name, text) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &text).expect("write");
        match Key::load(&path) {
            Err(KeyError::Format { path: p }) => assert!(p.contains(name), "{p}"),
            other => panic!("{name}: expected Format, got {other:?}"),
        }
    }
    match Key::load(&dir.join("missing")) {
        Err(KeyError::Io { .. }) => {}
        other => panic!("missing file: expected Io, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn debug_output_never_shows_key_bytes() {
    let bytes: [u8; 32] = std::array::from_fn(|i| 0xc0 ^ i as u8);
    let key = Key::from_bytes(bytes);
    let hex_lower = hex::encode(bytes);
    let hex_upper = hex::encode_upper(bytes);
    let shown = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{:?}", Keyring::single(key.clone())),
        format!("{:?}", Sealer::new(key.clone(), [45; 16])),
    ];
    for s in &shown {
        assert!(s.contains(&format!("{:08x}", key.id())), "{s}");
        // No 8-hex-digit run of the key (either case) appears.
        for i in 0..=hex_lower.len() - 8 {
            assert!(!s.contains(&hex_lower[i..i + 8]), "{s} leaks key hex");
            assert!(!s.contains(&hex_upper[i..i + 8]), "{s} leaks key hex");
        }
        assert!(
            !s.contains(&format!("{:?}", &bytes[..4])),
            "{s} leaks key bytes"
        );
    }
}

/// Regression: 32 raw bytes written instead of hex is a format error, not an I/O one.
#[test]
fn a_binary_key_file_is_a_format_error() {
    let dir = std::env::temp_dir().join(format!("sealrpc-binkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("raw");
    std::fs::write(&path, [0xffu8; 32]).expect("write");
    assert!(matches!(Key::load(&path), Err(KeyError::Format { .. })));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
