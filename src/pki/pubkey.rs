//! X25519 public keys, their SHA-256 fingerprints, fingerprint parsing and
//! public key files (`NAME.pub`: 64 hex characters and a newline).
use super::error::PkiError;
use super::fsutil;
use sha2::{Digest, Sha256};
use std::path::Path;

/// A peer's long-term X25519 public key (its Noise static key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// SHA-256 of the 32 key bytes.
    pub fn fingerprint_bytes(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    /// SHA-256 of the 32 key bytes as 64 lowercase hex characters: how keys
    /// are shown to people and configured (`master_fingerprint`).
    pub fn fingerprint(&self) -> String {
        hex::encode(self.fingerprint_bytes())
    }

    /// Whether this key has the fingerprint `fp` (see [`parse_fingerprint`]).
    pub fn has_fingerprint(&self, fp: &[u8; 32]) -> bool {
        &self.fingerprint_bytes() == fp
    }

    /// The key itself as 64 lowercase hex characters (the `.pub` file format).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (either case, surrounding whitespace allowed).
    pub fn from_hex(s: &str) -> Result<PublicKey, PkiError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut b).map_err(|_| PkiError::BadPublicKey)?;
        Ok(PublicKey(b))
    }

    /// Reads a public key file; `None` if it does not exist.
    pub(crate) fn read_file(path: &Path) -> Result<Option<PublicKey>, PkiError> {
        match fsutil::read_small(path, false)? {
            Some(text) => Ok(Some(PublicKey(*fsutil::decode_hex32(path, &text)?))),
            None => Ok(None),
        }
    }

    /// The file contents: hex and a newline.
    pub(crate) fn file_text(&self) -> String {
        format!("{}\n", self.to_hex())
    }
}

/// Parses a fingerprint: 64 hex characters, either case, either plain or as
/// 32 pairs separated by `:` (`AB:CD:…`). Surrounding whitespace is allowed.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], PkiError> {
    let s = s.trim();
    let plain: String = if s.contains(':') {
        let pairs: Vec<&str> = s.split(':').collect();
        if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
            return Err(PkiError::BadFingerprint);
        }
        pairs.concat()
    } else {
        s.to_owned()
    };
    let mut out = [0u8; 32];
    hex::decode_to_slice(&plain, &mut out).map_err(|_| PkiError::BadFingerprint)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: PublicKey = PublicKey([7u8; 32]);

    #[test]
    fn fingerprint_is_sha256_hex() {
        let fp = KEY.fingerprint();
        assert_eq!(fp.len(), 64);
        assert_eq!(fp, hex::encode(Sha256::digest([7u8; 32])));
        assert_eq!(fp, fp.to_lowercase());
        assert_eq!(format!("{KEY:?}"), format!("PublicKey({fp})"));
        assert!(!format!("{KEY:?}").contains(&KEY.to_hex()));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(PublicKey::from_hex(&KEY.to_hex()).unwrap(), KEY);
        assert_eq!(
            PublicKey::from_hex(&format!(" {}\n", KEY.to_hex().to_uppercase())).unwrap(),
            KEY
        );
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(66), &"g".repeat(64)] {
            assert!(PublicKey::from_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let fp = KEY.fingerprint();
        let want = KEY.fingerprint_bytes();
        let colons = fp
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned());
        let colons = colons.collect::<Vec<_>>().join(":");
        for ok in [
            fp.clone(),
            fp.to_uppercase(),
            colons.clone(),
            colons.to_uppercase(),
            format!(" {fp}\n"),
        ] {
            assert_eq!(parse_fingerprint(&ok).unwrap(), want, "{ok}");
        }
        assert!(KEY.has_fingerprint(&want));
        let bad = [
            String::new(),
            fp[..62].to_owned(),
            format!("{fp}00"),
            format!(":{fp}"),
            format!("{}:{}", &fp[..3], &fp[3..]),
            colons.replacen(':', "", 1),
            "zz".repeat(32),
            format!("SHA256:{fp}"),
        ];
        for b in bad {
            assert!(
                matches!(parse_fingerprint(&b), Err(PkiError::BadFingerprint)),
                "{b}"
            );
        }
    }
}
