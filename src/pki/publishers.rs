//! Who may publish jobs: the master's admin key (`PKI_DIR/admin.key` and
//! `admin.pub`, created at master startup, used by `sealrpc publish` run on
//! the master host) and every `PKI_DIR/publishers/NAME.pub` an admin adds.
use super::error::{check_id, PkiError};
use super::keypair::KeyPair;
use super::pubkey::PublicKey;
use std::path::Path;

/// The admin identity's name: `PKI_DIR/admin.key`, `PKI_DIR/admin.pub`.
pub const ADMIN_NAME: &str = "admin";
/// The directory of extra publisher keys, under the master's PKI dir.
pub const PUBLISHERS_DIR: &str = "publishers";

/// Loads the admin key pair, creating it (0600) on first start.
pub fn ensure_admin(pki_dir: &Path) -> Result<KeyPair, PkiError> {
    let (pair, created) = KeyPair::load_or_create(pki_dir, ADMIN_NAME)?;
    if created {
        tracing::info!(fingerprint = %pair.public().fingerprint(),
            "created the admin key {}", KeyPair::key_path(pki_dir, ADMIN_NAME).display());
    }
    Ok(pair)
}

/// The keys allowed to publish: `admin.pub` (if present) and every
/// `publishers/*.pub`.
pub fn publishers(pki_dir: &Path) -> Result<Vec<PublicKey>, PkiError> {
    Ok(named_publishers(pki_dir)?
        .into_iter()
        .map(|(_, k)| k)
        .collect())
}

/// [`publishers`] with names: `admin`, then each `publishers/NAME.pub` by
/// name. Files whose stem is not a valid id are skipped with a warning; a
/// malformed key file is an error.
pub fn named_publishers(pki_dir: &Path) -> Result<Vec<(String, PublicKey)>, PkiError> {
    let mut out = Vec::new();
    if let Some(k) = PublicKey::read_file(&KeyPair::pub_path(pki_dir, ADMIN_NAME))? {
        out.push((ADMIN_NAME.to_owned(), k));
    }
    let dir = pki_dir.join(PUBLISHERS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(PkiError::io(&dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| PkiError::io(&dir, e))?.path();
        if path.extension().is_none_or(|x| x != "pub") {
            continue;
        }
        match path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(|s| (s, check_id(s)))
        {
            Some((name, Ok(()))) => names.push(name.to_owned()),
            _ => tracing::warn!(
                "ignoring publisher key {}: not a valid name",
                path.display()
            ),
        }
    }
    names.sort();
    for name in names {
        if let Some(k) = PublicKey::read_file(&KeyPair::pub_path(&dir, &name))? {
            out.push((name, k));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testdir::TestDir;

    #[test]
    fn admin_and_publisher_files() {
        let d = TestDir::new("publishers");
        assert!(publishers(d.path()).unwrap().is_empty());
        let admin = ensure_admin(d.path()).unwrap();
        assert_eq!(ensure_admin(d.path()).unwrap().public(), admin.public());
        let pubs = d.path().join(PUBLISHERS_DIR);
        std::fs::create_dir(&pubs).unwrap();
        let ops = KeyPair::generate().unwrap();
        std::fs::write(pubs.join("ops.pub"), ops.public().file_text()).unwrap();
        std::fs::write(pubs.join("README"), "not a key").unwrap();
        std::fs::write(pubs.join("a b.pub"), ops.public().file_text()).unwrap();
        let got = named_publishers(d.path()).unwrap();
        let want = vec![
            ("admin".to_owned(), admin.public()),
            ("ops".to_owned(), ops.public()),
        ];
        assert_eq!(got, want);
        assert_eq!(
            publishers(d.path()).unwrap(),
            vec![admin.public(), ops.public()]
        );
        std::fs::write(pubs.join("bad.pub"), "xx").unwrap();
        assert!(matches!(
            publishers(d.path()),
            Err(PkiError::BadKeyFile { .. })
        ));
    }
}
