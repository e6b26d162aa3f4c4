//! Errors of the PKI layer. Messages name paths, ids and fingerprints (all
//! public), never key material.
use super::registry::KeyState;

/// Everything the key files, the minion registry and the master pin can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: expected 64 hexadecimal characters (a 32-byte X25519 key)")]
    BadKeyFile { path: String },
    #[error("{path} already exists; refusing to overwrite it")]
    Exists { path: String },
    #[error(
        "permissions {mode:04o} for {path} are too open: the private key must not be accessible \
         by group or others; it is ignored (run `chmod 600 {path}`)"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("{public} does not belong to the private key {secret}")]
    PublicMismatch { secret: String, public: String },
    #[error("invalid public key: expected 64 hexadecimal characters (32 bytes)")]
    BadPublicKey,
    #[error("invalid fingerprint: expected 64 hexadecimal characters (SHA-256), optionally as 32 ':'-separated pairs")]
    BadFingerprint,
    #[error("{0}")]
    BadId(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("no key is stored for minion {id}")]
    UnknownMinion { id: String },
    #[error("cannot {action} minion {id}: it has no {wanted} key")]
    NothingTo {
        id: String,
        action: &'static str,
        wanted: &'static str,
    },
    #[error(
        "minion {id} has a denied key (a different key was presented for an id that already \
         had one); check it with `sealrpc key list`, then `sealrpc key delete {id}` and let the \
         minion connect again"
    )]
    Denied { id: String },
    #[error("minion {id}: a different key is already {state}; delete the id first")]
    Conflict { id: String, state: KeyState },
    #[error("minion {id}: its key files kept changing under concurrent updates; try again")]
    Raced { id: String },
    #[error(
        "the master presented a key with fingerprint {presented}, but {pin} has fingerprint \
         {pinned}: refusing to connect. The pinned key is never replaced automatically; if the \
         master's key really changed, {fix}"
    )]
    MasterMismatch {
        pin: String,
        pinned: String,
        presented: String,
        fix: String,
    },
}

impl PkiError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> PkiError {
        PkiError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn bad_file(path: &std::path::Path) -> PkiError {
        PkiError::BadKeyFile {
            path: path.display().to_string(),
        }
    }
}

/// Checks a minion id or key name with [`crate::job::validate_id`]: no path
/// separators, no `..`, no NUL (the CVE-2020-11652 class of bugs).
pub fn check_id(id: &str) -> Result<(), PkiError> {
    crate::job::validate_id(id).map_err(|e| match e {
        crate::Error::Publish(msg) => PkiError::BadId(msg),
        other => PkiError::BadId(other.to_string()),
    })
}
