//! A master with node identities: its key pair, the minion key registry
//! and the publisher list decide who may connect and as what (the verifier
//! of the handshake), and the router's guard decides who may call what.
use crate::channel::{
    Authenticated, HandlerError, Identity, PeerRole, Principal, Refusal, Request, Router,
};
use crate::error::Error;
use crate::job;
use crate::pki::{self, AcceptedCache, AcceptedMap, KeyPair, KeyState, MinionKeys, PublicKey};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// Where the master keeps its keys, and how it treats minions.
#[derive(Clone, Debug, Default)]
pub struct MasterPki {
    /// `master.key`/`.pub`, `admin.key`/`.pub`, `publishers/`, `minions/…`.
    pub dir: PathBuf,
    /// Accept every new minion key at once (off by default: keys wait as
    /// pending until `sealrpc key accept`).
    pub auto_accept: bool,
    /// Minion ids whose trace context is not trusted: their requests' SERVER
    /// spans start new traces linked to the caller's context.
    pub untrusted_context: Vec<String>,
}

/// What the master needs at run time in identity mode.
pub(crate) struct Security {
    pub(crate) signer: SigningKey,
    pub(crate) granted: Arc<Granted>,
    /// The accepted minion keys, read again only when they change.
    accepted: Arc<AcceptedCache>,
    dir: PathBuf,
}

/// Who holds a credential right now: the accepted minion keys and the
/// publisher keys, refreshed from the PKI dir every second (the minion
/// keys from the cache, rebuilt when it read the files again) and checked
/// on every request (a key deleted after its connection's handshake stops
/// working at the next refresh, registered or not).
#[derive(Default)]
pub(crate) struct Granted {
    minions: RwLock<HashMap<String, PublicKey>>,
    publishers: RwLock<HashSet<PublicKey>>,
}

impl Granted {
    fn minion(&self, id: &str, key: &PublicKey) -> bool {
        read(&self.minions).get(id) == Some(key)
    }

    fn grant(&self, id: &str, key: PublicKey) {
        if !self.minion(id, &key) {
            write(&self.minions).insert(id.to_owned(), key);
        }
    }

    fn publisher(&self, key: &PublicKey) -> bool {
        read(&self.publishers).contains(key)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Security {
    /// Re-reads the publisher list, and the accepted minion keys if they
    /// changed; returns the accepted minion keys.
    pub(crate) fn refresh(&self) -> Result<Arc<AcceptedMap>, Error> {
        let (accepted, read_now) = self.accepted.get().map_err(|e| Error::Pki(e.to_string()))?;
        let publishers = pki::publishers(&self.dir).map_err(|e| Error::Pki(e.to_string()))?;
        if read_now {
            *write(&self.granted.minions) = (*accepted).clone();
        }
        *write(&self.granted.publishers) = publishers.into_iter().collect();
        Ok(accepted)
    }
}

/// Loads (or creates, on first start) the master's key pair and the admin
/// key, and builds the handshake identity whose verifier applies the
/// minion registry and the publisher list.
pub(crate) fn load(pki: &MasterPki) -> Result<(Identity, Security), Error> {
    let dir = &pki.dir;
    let (keys, created) =
        KeyPair::load_or_create(dir, pki::MASTER_NAME).map_err(|e| Error::Pki(e.to_string()))?;
    if created {
        tracing::info!("created the master key pair in {}", dir.display());
    }
    pki::ensure_admin(dir).map_err(|e| Error::Pki(e.to_string()))?;
    let registry = MinionKeys::open(dir).map_err(|e| Error::Pki(e.to_string()))?;
    let accepted = Arc::new(AcceptedCache::new(registry.clone()));
    let security = Security {
        signer: signing_key(&keys),
        granted: Arc::default(),
        accepted: accepted.clone(),
        dir: dir.clone(),
    };
    security.refresh()?;
    let granted = security.granted.clone();
    let untrusted: HashSet<String> = pki.untrusted_context.iter().cloned().collect();
    let (reg, auto) = (registry, pki.auto_accept);
    let verify = move |peer: &Authenticated| -> Result<Principal, Refusal> {
        if granted.publisher(&peer.key) {
            return Ok(Principal {
                key: peer.key,
                id: None,
                role: PeerRole::Publisher,
                trusted_context: true,
            });
        }
        let id = std::str::from_utf8(&peer.payload)
            .map_err(|_| Refusal("the minion id is not UTF-8".into()))?;
        job::validate_id(id).map_err(|e| Refusal(e.to_string()))?;
        // An accepted key, while the accepted directory is unchanged since
        // the cache read it, needs no file; anything else reads (and files)
        // the key as before.
        let state = match accepted.check(id, &peer.key) {
            Some(true) => Ok(KeyState::Accepted),
            _ => reg.observe(id, &peer.key, auto),
        };
        match state {
            Ok(KeyState::Accepted) => {
                granted.grant(id, peer.key);
                Ok(Principal {
                    key: peer.key,
                    id: Some(id.to_owned()),
                    role: PeerRole::Minion,
                    trusted_context: !untrusted.contains(id),
                })
            }
            Ok(state) => {
                tracing::warn!("minion {id} refused: its key is {state:?}");
                Err(Refusal(format!("minion key {state:?}")))
            }
            Err(e) => Err(Refusal(e.to_string())),
        }
    };
    let identity = Identity::new(Arc::new(keys), Vec::new(), Arc::new(verify));
    Ok((identity, security))
}

/// The master's publish-signing key: HKDF-SHA256 of its static secret with
/// its own label, so the two keys are independent.
fn signing_key(keys: &KeyPair) -> SigningKey {
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's output limit: cannot fail.
    let _ = Hkdf::<Sha256>::new(None, keys.secret_bytes())
        .expand(b"sealrpc publish signing key v1", okm.as_mut_slice());
    SigningKey::from_bytes(&okm)
}

/// Who may call what, in identity mode: publishers may call anything;
/// accepted minions anything but `sealrpc.publish`. (With a shared key,
/// holding the key is the only credential: every method is open.)
pub(crate) fn guard(router: Router, granted: Option<Arc<Granted>>) -> Router {
    router.guard(move |req: &Request| match (&req.principal, &granted) {
        (None, _) | (_, None) => Ok(()),
        (Some(p), Some(granted)) => match p.role {
            PeerRole::Publisher if !granted.publisher(&p.key) => Err(HandlerError::new(
                "this key is no longer on the master's publisher list",
            )),
            PeerRole::Publisher => Ok(()),
            PeerRole::Minion if !p.id.as_deref().is_some_and(|id| granted.minion(id, &p.key)) => {
                Err(HandlerError::new("this minion's key is no longer accepted"))
            }
            PeerRole::Minion if *req.method == *job::PUBLISH => Err(HandlerError::new(
                "publishing needs an identity on the master's publisher list",
            )),
            PeerRole::Minion => Ok(()),
            PeerRole::Master => Err(HandlerError::new("a master may not call a master")),
        },
    })
}

/// The id a request's handshake bound, when the request must come from
/// that minion (identity mode); `Ok` without identities.
pub(crate) fn bound_id(req: &Request, claimed: &str) -> Result<(), HandlerError> {
    match &req.principal {
        None => Ok(()),
        Some(p) if p.id.as_deref() == Some(claimed) => Ok(()),
        Some(_) => Err(HandlerError::new(format!(
            "this connection is not minion {claimed}"
        ))),
    }
}
