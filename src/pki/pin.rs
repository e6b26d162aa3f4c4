//! The minion's pin of its master's public key: a configured fingerprint,
//! else `PKI_DIR/master.pub`, written on first contact (trust on first use).
//! A master presenting any other key is refused; the pin is never replaced
//! automatically.
use super::error::PkiError;
use super::fsutil;
use super::pubkey::{parse_fingerprint, PublicKey};
use std::path::{Path, PathBuf};

/// The pinned master key file in a minion's PKI dir.
pub const MASTER_PIN_FILE: &str = "master.pub";

/// What the master's key was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pin {
    /// A fingerprint from the configuration.
    Fingerprint([u8; 32]),
    /// The key file written on first contact.
    File(PathBuf),
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pin::Fingerprint(_) => f.write_str("the configured master fingerprint"),
            Pin::File(p) => write!(f, "the pinned master key {}", p.display()),
        }
    }
}

/// The result of a successful check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// The presented key matches the pin.
    Matched(Pin),
    /// No pin existed: the presented key was written to this file (TOFU).
    Pinned(PathBuf),
}

/// Checks the key a master presented in the handshake. With a configured
/// fingerprint, compares against it (and ignores `master.pub`). Otherwise
/// compares against `PKI_DIR/master.pub`, or writes that file on first use.
pub fn check_master(
    pki_dir: &Path,
    configured_fingerprint: Option<&str>,
    presented: &PublicKey,
) -> Result<PinOutcome, PkiError> {
    if let Some(fp) = configured_fingerprint {
        let fp = parse_fingerprint(fp)?;
        return match presented.has_fingerprint(&fp) {
            true => Ok(PinOutcome::Matched(Pin::Fingerprint(fp))),
            false => Err(mismatch(Pin::Fingerprint(fp), hex::encode(fp), presented)),
        };
    }
    let path = pki_dir.join(MASTER_PIN_FILE);
    // Twice at most: a concurrent first contact may write the pin between
    // our read and our create; then we compare with what it wrote.
    for _ in 0..2 {
        match PublicKey::read_file(&path)? {
            Some(k) if k == *presented => return Ok(PinOutcome::Matched(Pin::File(path))),
            Some(k) => return Err(mismatch(Pin::File(path), k.fingerprint(), presented)),
            None => {
                fsutil::ensure_dir(pki_dir)?;
                if fsutil::create_new(&path, presented.file_text().as_bytes(), 0o644)? {
                    tracing::info!(fingerprint = %presented.fingerprint(), path = %path.display(),
                        "pinned the master's key on first contact");
                    return Ok(PinOutcome::Pinned(path));
                }
            }
        }
    }
    Err(PkiError::Raced {
        id: MASTER_PIN_FILE.to_owned(),
    })
}

fn mismatch(pin: Pin, pinned: String, presented: &PublicKey) -> PkiError {
    let fix = match &pin {
        Pin::Fingerprint(_) => "update the configured fingerprint".to_owned(),
        Pin::File(p) => format!("remove {} after checking the new key", p.display()),
    };
    PkiError::MasterMismatch {
        pin: pin.to_string(),
        pinned,
        presented: presented.fingerprint(),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testdir::TestDir;

    #[test]
    fn trust_on_first_use_then_refuse_another_key() {
        let d = TestDir::new("pin-tofu");
        let dir = d.path().join("minion-pki");
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let path = dir.join(MASTER_PIN_FILE);
        assert_eq!(
            check_master(&dir, None, &a).unwrap(),
            PinOutcome::Pinned(path.clone())
        );
        assert_eq!(
            check_master(&dir, None, &a).unwrap(),
            PinOutcome::Matched(Pin::File(path.clone()))
        );
        let e = check_master(&dir, None, &b).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PkiError::MasterMismatch { .. }));
        assert!(
            msg.contains(&a.fingerprint()) && msg.contains(&b.fingerprint()),
            "{msg}"
        );
        assert!(msg.contains("never replaced automatically"), "{msg}");
        assert!(!msg.contains(&a.to_hex()) && !msg.contains(&b.to_hex()));
        // Still the first key: the mismatch changed nothing.
        assert_eq!(PublicKey::read_file(&path).unwrap(), Some(a));
    }

    #[test]
    fn configured_fingerprint_wins_over_the_file() {
        let d = TestDir::new("pin-conf");
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        check_master(d.path(), None, &a).unwrap();
        let fp_b = b.fingerprint().to_uppercase();
        let out = check_master(d.path(), Some(&fp_b), &b).unwrap();
        assert_eq!(
            out,
            PinOutcome::Matched(Pin::Fingerprint(b.fingerprint_bytes()))
        );
        let e = check_master(d.path(), Some(&fp_b), &a).unwrap_err();
        assert!(e.to_string().contains("configured fingerprint"), "{e}");
        let e = check_master(d.path(), Some("abc"), &a).unwrap_err();
        assert!(matches!(e, PkiError::BadFingerprint));
    }

    #[test]
    fn a_corrupt_pin_is_an_error_not_a_new_pin() {
        let d = TestDir::new("pin-bad");
        std::fs::write(d.path().join(MASTER_PIN_FILE), "garbage").unwrap();
        let e = check_master(d.path(), None, &PublicKey([1; 32])).unwrap_err();
        assert!(matches!(e, PkiError::BadKeyFile { .. }));
    }
}
