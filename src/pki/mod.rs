//! Identities and trust: long-term X25519 keys (the Noise static keys), the
//! master's registry of minion keys, the minion's pin of its master's key,
//! and the keys allowed to publish.
//!
//! # Trust model
//! - Every peer has a long-term X25519 key pair (`NAME.key`, secret, mode
//!   0600, refused if group or others may read it; `NAME.pub`, public). People
//!   compare keys by fingerprint: the SHA-256 of the public key, in hex.
//! - The master learns a minion's key from the handshake and files it as
//!   *pending* until an admin accepts it (`sealrpc key accept ID`), unless
//!   auto-accept is on. Only *accepted* minions are served.
//! - A different key for an id that already has one is never taken in its
//!   place: it is filed as *denied*, the original is kept, and the id stays
//!   refused for that key until an admin deletes the id.
//! - A minion pins its master's key: a configured fingerprint, else
//!   `master.pub` written on first contact (trust on first use). Another
//!   master key is refused and the pin is never replaced automatically.
//! - Only the admin key (`admin.key`, made at master startup) and the keys in
//!   `publishers/*.pub` may publish jobs.
//!
//! # Layout
//! Master PKI dir: `master.key`, `master.pub`, `admin.key`, `admin.pub`,
//! `publishers/NAME.pub`, `minions/{accepted,pending,rejected,denied}/ID`.
//! Minion PKI dir: `ID.key`, `ID.pub` (`sealrpc keygen --pki-dir DIR --id
//! ID`), `master.pub` (the pin); a minion may not be called `master` or
//! `admin`, the names of the master's own keys.
//! Every id and key name passes [`crate::job::validate_id`] before it is
//! used in a path.
mod accepted;
mod error;
mod fsutil;
mod keypair;
mod manage;
mod pin;
mod pubkey;
mod publishers;
mod registry;
#[cfg(test)]
mod testdir;

pub use accepted::{AcceptedCache, AcceptedMap};
pub use error::{check_id, PkiError};
pub use keypair::KeyPair;
pub use pin::{check_master, Pin, PinOutcome, MASTER_PIN_FILE};
pub use pubkey::{parse_fingerprint, PublicKey};
pub use publishers::{ensure_admin, named_publishers, publishers, ADMIN_NAME, PUBLISHERS_DIR};
pub use registry::{Change, KeyEntry, KeyState, MinionKeys};

/// The master's own identity: `PKI_DIR/master.key`, `master.pub`.
pub const MASTER_NAME: &str = "master";
/// A minion's own identity: `PKI_DIR/minion.key`, `minion.pub`.
pub const MINION_NAME: &str = "minion";
