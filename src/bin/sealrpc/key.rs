//! `sealrpc key`: the master's minion keys (list, accept, reject, delete),
//! and `sealrpc keygen --pki-dir DIR --id ID`: a new identity key pair.
use clap::{Args, Subcommand};
use sealrpc::pki::{Change, KeyPair, KeyState, MinionKeys};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct KeyArgs {
    /// The master's PKI directory (holds minions/accepted, pending, ...).
    #[arg(long, env = "SEALRPC_PKI_DIR")]
    pki_dir: PathBuf,
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Print every minion key: state, id, fingerprint.
    List,
    /// Accept a pending (or rejected) key; --all accepts every pending key.
    Accept(Which),
    /// Reject a pending or accepted key; --all rejects every pending key.
    Reject(Which),
    /// Forget a minion's keys in every state; --all forgets every minion.
    Delete(Which),
}

#[derive(Args)]
struct Which {
    /// The minion id.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Every key (see each command's help for which).
    #[arg(long)]
    all: bool,
}

pub async fn run(a: KeyArgs) -> Result<(), String> {
    // Opening creates the directories: do not make a fresh, empty registry
    // out of a mistyped --pki-dir.
    if !a.pki_dir.join("minions").is_dir() {
        return Err(format!(
            "no minion keys under {}: is it the master's PKI directory? (the master creates minions/ on start)",
            a.pki_dir.display()
        ));
    }
    let keys = MinionKeys::open(&a.pki_dir).map_err(|e| e.to_string())?;
    let (verb, which) = match a.action {
        KeyAction::List => return list(&keys),
        KeyAction::Accept(w) => ("accept", w),
        KeyAction::Reject(w) => ("reject", w),
        KeyAction::Delete(w) => ("delete", w),
    };
    let changes = match (verb, which.id.as_deref()) {
        ("accept", Some(id)) => keys.accept(id),
        ("accept", None) => keys.accept_all(),
        ("reject", Some(id)) => keys.reject(id),
        ("reject", None) => keys.reject_all(),
        (_, Some(id)) => keys.delete(id),
        (_, None) => keys.delete_all(),
    }
    .map_err(|e| e.to_string())?;
    report(&keys, verb, &which, &changes);
    Ok(())
}

/// The table: STATE, ID, FINGERPRINT.
fn list(keys: &MinionKeys) -> Result<(), String> {
    let entries = keys.list().map_err(|e| e.to_string())?;
    if entries.is_empty() {
        eprintln!("no minion keys");
        return Ok(());
    }
    let width = entries.iter().map(|e| e.id.len()).max().unwrap_or(0).max(2);
    println!("{:<8}  {:<width$}  FINGERPRINT", "STATE", "ID");
    for e in entries {
        println!(
            "{:<8}  {:<width$}  {}",
            e.state.as_str(),
            e.id,
            e.fingerprint
        );
    }
    Ok(())
}

/// One line per change on stdout (with the key's fingerprint where it still
/// exists); a note on stderr when nothing changed. Ids skipped by `--all`
/// (a denied key) are logged as warnings by the library.
fn report(keys: &MinionKeys, verb: &str, which: &Which, changes: &[Change]) {
    // Only for the fingerprints: the change is made even if listing fails.
    let entries = keys.list().unwrap_or_default();
    for c in changes {
        let fp = entries.iter().find(|e| e.id == c.id && e.state == c.to);
        let fp = fp
            .map(|e| format!("  {}", e.fingerprint))
            .unwrap_or_default();
        match c.to {
            KeyState::Unknown => println!("deleted   {} ({} key)", c.id, c.from),
            to => println!("{:<8}  {} (was {}){fp}", to.as_str(), c.id, c.from),
        }
    }
    if let Some(id) = which.id.as_deref().filter(|_| changes.is_empty()) {
        eprintln!("nothing to {verb}: {id} is already {}", past(verb));
    } else if which.all && changes.is_empty() {
        eprintln!("nothing to {verb}");
    }
}

fn past(verb: &str) -> &'static str {
    match verb {
        "accept" => "accepted",
        "reject" => "rejected",
        _ => "deleted",
    }
}

/// `sealrpc keygen --pki-dir DIR --id ID`: writes `DIR/ID.key` (0600, never
/// overwritten) and `DIR/ID.pub`, and prints the public key's fingerprint.
pub fn keygen_identity(dir: &Path, id: &str) -> Result<(), String> {
    let pair = KeyPair::generate().map_err(|e| e.to_string())?;
    pair.save_new(dir, id).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} and {}",
        KeyPair::key_path(dir, id).display(),
        KeyPair::pub_path(dir, id).display()
    );
    println!("{}", pair.public().fingerprint());
    Ok(())
}
