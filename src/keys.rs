//! Long-term symmetric keys: generation, key files (hex, mode 0600), key ids
//! and the keyring a receiver looks keys up in. Keys are zeroized on drop
//! and never printed: `Debug` shows only the key id.
use crate::error::KeyError;
use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

/// A 256-bit key and its public 32-bit id.
#[derive(Clone)]
pub struct Key {
    bytes: Zeroizing<[u8; 32]>,
    id: u32,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:08x})", self.id)
    }
}

impl Key {
    /// Wraps raw key bytes. The id is the first four bytes of
    /// SHA-256("sealrpc key id v1" || key): public, stable, not secret-revealing.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        let bytes = Zeroizing::new(bytes);
        let digest = Sha256::new()
            .chain_update(b"sealrpc key id v1")
            .chain_update(bytes.as_slice())
            .finalize();
        let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        Key { bytes, id }
    }

    /// A fresh key straight from the operating system's CSPRNG (getrandom).
    ///
    /// # Panics
    /// If the operating system cannot provide randomness at all: there is
    /// no safe way to make a key then.
    pub fn generate() -> Key {
        use rand::TryRngCore;
        let mut b = Zeroizing::new([0u8; 32]);
        if let Err(e) = rand::rngs::OsRng.try_fill_bytes(b.as_mut_slice()) {
            panic!("the operating system's random number generator failed: {e}");
        }
        Key::from_bytes(*b)
    }

    /// The key's public id, sent in every envelope header.
    pub fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Reads a key file: 64 hex characters, surrounding whitespace allowed.
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let shown = path.display().to_string();
        let raw = Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(raw.trim_ascii(), bytes.as_mut_slice())
            .map_err(|_| KeyError::Format { path: shown })?;
        Ok(Key::from_bytes(*bytes))
    }

    /// Writes the key as hex to a new file created with mode 0600.
    /// Refuses to overwrite an existing file.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let shown = path.display().to_string();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: shown.clone(),
                }
            } else {
                KeyError::Io {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        let mut text = Zeroizing::new(hex::encode(self.bytes.as_slice()));
        text.push('\n');
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|source| KeyError::Io {
                path: shown,
                source,
            })
    }
}

/// The keys a receiver accepts, looked up by the id in the envelope header.
/// Holding several keys lets a deployment rotate keys without downtime.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A keyring holding one key.
    pub fn single(key: Key) -> Keyring {
        Keyring { keys: vec![key] }
    }

    /// Adds a key (replacing one with the same id).
    pub fn insert(&mut self, key: Key) {
        self.keys.retain(|k| k.id != key.id);
        self.keys.push(key);
    }

    /// The key with this id.
    pub fn get(&self, id: u32) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}
