//! Long-term X25519 identity keys (the Noise static keys): generation and the
//! key files `DIR/NAME.key` (secret, 64 hex characters, mode 0600) and
//! `DIR/NAME.pub` (public, 0644). The secret is zeroized on drop and never
//! printed: `Debug` shows the public fingerprint only.
use super::error::{check_id, PkiError};
use super::fsutil;
use super::pubkey::PublicKey;
use curve25519_dalek::montgomery::MontgomeryPoint;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// An X25519 key pair. Clamping is left to X25519 itself (as in RFC 7748 and
/// the Noise handshake), so the stored secret is 32 random bytes.
#[derive(Clone)]
pub struct KeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.public.fingerprint())
    }
}

impl KeyPair {
    /// A fresh key pair from the operating system's CSPRNG.
    pub fn generate() -> Result<KeyPair, PkiError> {
        use rand::TryRngCore;
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(secret.as_mut_slice())
            .map_err(|e| PkiError::Random(e.to_string()))?;
        Ok(KeyPair::from_secret(secret))
    }

    /// The key pair of a secret (X25519 of the base point).
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> KeyPair {
        let public = PublicKey(MontgomeryPoint::mul_base_clamped(*secret).to_bytes());
        KeyPair { secret, public }
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The 32 secret bytes, for the Noise handshake
    /// (`snow::Builder::local_private_key`). Never log, print or send them;
    /// the only place they belong on disk is the file [`KeyPair::save_new`] writes.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// `DIR/NAME.key`.
    pub fn key_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.key"))
    }

    /// `DIR/NAME.pub`.
    pub fn pub_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.pub"))
    }

    /// Writes `DIR/NAME.key` (mode 0600; never overwrites an existing one)
    /// and `DIR/NAME.pub` (0644; replaced). Creates `DIR` (0700) if missing.
    /// `NAME` must be a valid id (no path separators).
    pub fn save_new(&self, dir: &Path, name: &str) -> Result<(), PkiError> {
        check_id(name)?;
        fsutil::ensure_dir(dir)?;
        let key_path = KeyPair::key_path(dir, name);
        let mut text = Zeroizing::new(hex::encode(self.secret.as_slice()));
        text.push('\n');
        if !fsutil::create_new(&key_path, text.as_bytes(), 0o600)? {
            return Err(PkiError::Exists {
                path: key_path.display().to_string(),
            });
        }
        let pub_path = KeyPair::pub_path(dir, name);
        fsutil::write_atomic(&pub_path, self.public.file_text().as_bytes(), 0o644)
    }

    /// Reads `DIR/NAME.key` and derives the public key. Refuses, like ssh, a
    /// key file that group or others may access (unix). If `DIR/NAME.pub`
    /// exists it must hold the derived public key.
    pub fn load(dir: &Path, name: &str) -> Result<KeyPair, PkiError> {
        check_id(name)?;
        let key_path = KeyPair::key_path(dir, name);
        let text = fsutil::read_small(&key_path, true)?
            .ok_or_else(|| PkiError::io(&key_path, std::io::ErrorKind::NotFound.into()))?;
        let pair = KeyPair::from_secret(fsutil::decode_hex32(&key_path, &text)?);
        let pub_path = KeyPair::pub_path(dir, name);
        match PublicKey::read_file(&pub_path)? {
            Some(p) if p != pair.public => Err(PkiError::PublicMismatch {
                secret: key_path.display().to_string(),
                public: pub_path.display().to_string(),
            }),
            _ => Ok(pair),
        }
    }

    /// Loads `DIR/NAME.key`, or creates it (and `NAME.pub`) if it does not
    /// exist. The flag says whether it was created.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<(KeyPair, bool), PkiError> {
        check_id(name)?;
        if KeyPair::key_path(dir, name).exists() {
            return KeyPair::load(dir, name).map(|k| (k, false));
        }
        let pair = KeyPair::generate()?;
        match pair.save_new(dir, name) {
            Ok(()) => Ok((pair, true)),
            // Another process created it first: use theirs.
            Err(PkiError::Exists { .. }) => KeyPair::load(dir, name).map(|k| (k, false)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testdir::TestDir;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn rfc7748_vector() {
        let sk = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .unwrap();
        let pair = KeyPair::from_secret(Zeroizing::new(sk.try_into().unwrap()));
        let pk = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        assert_eq!(pair.public().to_hex(), pk);
    }

    #[test]
    fn debug_shows_the_fingerprint_only() {
        let pair = KeyPair::generate().unwrap();
        let shown = format!("{pair:?}");
        assert_eq!(shown, format!("KeyPair({})", pair.public().fingerprint()));
        assert!(!shown.contains(&hex::encode(pair.secret_bytes())));
    }

    #[test]
    fn save_and_load() {
        let d = TestDir::new("kp-save");
        let dir = d.path().join("pki");
        let pair = KeyPair::generate().unwrap();
        pair.save_new(&dir, "web1").unwrap();
        assert_eq!(mode(&KeyPair::key_path(&dir, "web1")), 0o600);
        assert_eq!(mode(&KeyPair::pub_path(&dir, "web1")), 0o644);
        assert_eq!(mode(&dir), 0o700);
        let back = KeyPair::load(&dir, "web1").unwrap();
        assert_eq!(back.public(), pair.public());
        assert_eq!(back.secret_bytes(), pair.secret_bytes());
        let other = KeyPair::generate().unwrap();
        assert!(matches!(
            other.save_new(&dir, "web1"),
            Err(PkiError::Exists { .. })
        ));
        assert_eq!(KeyPair::load(&dir, "web1").unwrap().public(), pair.public());
    }

    #[test]
    fn refuses_open_modes_mismatched_pub_and_bad_names() {
        let d = TestDir::new("kp-refuse");
        KeyPair::generate()
            .unwrap()
            .save_new(d.path(), "m")
            .unwrap();
        let key = KeyPair::key_path(d.path(), "m");
        for open in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(open)).unwrap();
            let e = KeyPair::load(d.path(), "m").unwrap_err();
            assert!(matches!(e, PkiError::TooOpen { .. }), "{e}");
            assert!(e.to_string().contains("chmod 600"));
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other = KeyPair::generate().unwrap().public().file_text();
        std::fs::write(KeyPair::pub_path(d.path(), "m"), other).unwrap();
        assert!(matches!(
            KeyPair::load(d.path(), "m"),
            Err(PkiError::PublicMismatch { .. })
        ));
        std::fs::remove_file(KeyPair::pub_path(d.path(), "m")).unwrap();
        assert!(
            KeyPair::load(d.path(), "m").is_ok(),
            "a missing .pub is derived"
        );
        for bad in ["../m", "a/b", "", "a\0b"] {
            assert!(matches!(
                KeyPair::load(d.path(), bad),
                Err(PkiError::BadId(_))
            ));
            let save = KeyPair::generate().unwrap().save_new(d.path(), bad);
            assert!(matches!(save, Err(PkiError::BadId(_))));
        }
        std::fs::write(&key, "not hex").unwrap();
        let e = KeyPair::load(d.path(), "m").unwrap_err();
        assert!(matches!(e, PkiError::BadKeyFile { .. }) && !e.to_string().contains("not hex"));
    }

    #[test]
    fn load_or_create_creates_once() {
        let d = TestDir::new("kp-ensure");
        let (a, created) = KeyPair::load_or_create(d.path(), "admin").unwrap();
        assert!(created);
        let (b, created) = KeyPair::load_or_create(d.path(), "admin").unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
    }
}
