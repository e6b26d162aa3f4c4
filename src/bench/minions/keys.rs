//! The bench's keys: a fresh master PKI dir with the master and admin key
//! pairs and every minion's key already accepted (written with the pki
//! API, as `sealrpc key accept` leaves them), and the minions' key pairs,
//! kept in memory. The dir is removed when [`BenchPki`] is dropped.
use super::MinionBenchError;
use crate::channel::{Authenticated, Identity, PeerRole, Principal, Refusal};
use crate::pki::{self, KeyPair, MinionKeys, PublicKey};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) struct BenchPki {
    dir: PathBuf,
    /// The master's public key (the minions and the admin pin it).
    pub(crate) master: PublicKey,
    pub(crate) admin: KeyPair,
    /// Each minion's id and key pair.
    pub(crate) minions: Vec<(String, KeyPair)>,
}

impl BenchPki {
    /// The master's PKI dir (`--pki-dir` of the master process).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BenchPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connecting identity with the master's key pinned in memory (as
/// `--master-fingerprint` pins it): `payload` is a minion's id, or empty.
pub(crate) fn pinned_identity(keys: KeyPair, payload: &str, master: PublicKey) -> Identity {
    let verify = move |peer: &Authenticated| -> Result<Principal, Refusal> {
        if peer.key != master {
            return Err(Refusal("not the bench's master key".into()));
        }
        Ok(Principal {
            key: peer.key,
            id: None,
            role: PeerRole::Master,
            trusted_context: true,
        })
    };
    Identity::new(
        Arc::new(keys),
        payload.as_bytes().to_vec(),
        Arc::new(verify),
    )
}

fn pki_err(e: impl std::fmt::Display) -> MinionBenchError {
    MinionBenchError::Setup(format!("bench PKI: {e}"))
}

/// The id of minion `i` of `n`: `m1`…`m9` for 9, `m00001`… for 10,000.
pub(crate) fn minion_id(i: usize, n: usize) -> String {
    let width = n.to_string().len();
    format!("m{i:0width$}")
}

/// Creates the master's PKI dir under a fresh temporary directory (in
/// `/dev/shm` where it exists: the PKI writes are synced, which costs
/// nothing on tmpfs) and `n` accepted minion keys.
pub(crate) async fn create(n: usize) -> Result<BenchPki, MinionBenchError> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let tag: u64 = rand::random();
    let dir = base.join(format!(
        "sealrpc-bench-minions-{}-{tag:016x}",
        std::process::id()
    ));
    let minions = generate(n).await?;
    let pki = BenchPki {
        master: PublicKey([0; 32]),
        admin: KeyPair::generate().map_err(pki_err)?,
        dir,
        minions,
    };
    tokio::task::spawn_blocking(move || write(pki))
        .await
        .map_err(pki_err)?
}

/// `n` key pairs with their ids, generated on every core.
async fn generate(n: usize) -> Result<Vec<(String, KeyPair)>, MinionBenchError> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per = n.div_ceil(threads).max(1);
    let mut chunks = Vec::new();
    for start in (1..=n).step_by(per) {
        let end = (start + per).min(n + 1);
        chunks.push(tokio::task::spawn_blocking(move || {
            (start..end)
                .map(|i| Ok((minion_id(i, n), KeyPair::generate().map_err(pki_err)?)))
                .collect::<Result<Vec<_>, MinionBenchError>>()
        }));
    }
    let mut out = Vec::with_capacity(n);
    for chunk in chunks {
        out.extend(chunk.await.map_err(pki_err)??);
    }
    Ok(out)
}

/// Writes the master's and the admin's key pairs and accepts every minion.
fn write(mut pki: BenchPki) -> Result<BenchPki, MinionBenchError> {
    let master = KeyPair::generate().map_err(pki_err)?;
    master
        .save_new(&pki.dir, pki::MASTER_NAME)
        .map_err(pki_err)?;
    pki.admin
        .save_new(&pki.dir, pki::ADMIN_NAME)
        .map_err(pki_err)?;
    pki.master = master.public();
    let registry = MinionKeys::open(&pki.dir).map_err(pki_err)?;
    for (id, keys) in &pki.minions {
        // A new id with auto-accept is filed as accepted.
        registry
            .observe(id, &keys.public(), true)
            .map_err(pki_err)?;
    }
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_order() {
        assert_eq!(minion_id(1, 9), "m1");
        assert_eq!(minion_id(7, 10), "m07");
        assert_eq!(minion_id(42, 10_000), "m00042");
    }

    #[tokio::test]
    async fn every_minion_is_accepted_and_the_dir_goes_away() {
        let pki = create(3).await.unwrap();
        let dir = pki.dir().to_owned();
        let accepted = MinionKeys::open(&dir).unwrap().accepted_keys().unwrap();
        let want: Vec<_> = pki
            .minions
            .iter()
            .map(|(id, k)| (id.clone(), k.public()))
            .collect();
        assert_eq!(accepted, want);
        let master = KeyPair::load(&dir, pki::MASTER_NAME).unwrap();
        assert_eq!(master.public(), pki.master);
        drop(pki);
        assert!(!dir.exists());
    }
}
