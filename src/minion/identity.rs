//! The connecting side's identity (a minion, or the CLI with the admin
//! key): its key pair from a PKI dir, and a verifier that accepts only the
//! master whose key is pinned (a configured fingerprint, or trust on first
//! use written to `DIR/master.pub` and never silently replaced).
use crate::channel::{Authenticated, Identity, PeerRole, Principal, Refusal};
use crate::error::Error;
use crate::pki::{self, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads `DIR/NAME.key` and pins the master: `payload` is what the
/// handshake tells the master (a minion's id; empty for the CLI).
pub fn connecting_identity(
    dir: &Path,
    name: &str,
    payload: &[u8],
    master_fingerprint: Option<String>,
) -> Result<Identity, Error> {
    let keys = KeyPair::load(dir, name).map_err(|e| Error::Pki(e.to_string()))?;
    if let Some(fp) = &master_fingerprint {
        pki::parse_fingerprint(fp).map_err(|e| Error::Pki(e.to_string()))?;
    }
    let dir: PathBuf = dir.to_owned();
    let verify = move |peer: &Authenticated| -> Result<Principal, Refusal> {
        match pki::check_master(&dir, master_fingerprint.as_deref(), &peer.key) {
            Ok(outcome) => {
                tracing::debug!("master key {}: {outcome:?}", peer.key.fingerprint());
                Ok(Principal {
                    key: peer.key,
                    id: None,
                    role: PeerRole::Master,
                    trusted_context: true,
                })
            }
            Err(e) => {
                tracing::warn!("refusing the master: {e}");
                Err(Refusal(e.to_string()))
            }
        }
    };
    Ok(Identity::new(
        Arc::new(keys),
        payload.to_vec(),
        Arc::new(verify),
    ))
}
