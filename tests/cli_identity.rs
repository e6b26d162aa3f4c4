//! Node identities end to end with the real binary: `sealrpc keygen
//! --pki-dir`, a master with `--pki-dir`, minions whose keys wait in
//! `sealrpc key list` until `sealrpc key accept`, `sealrpc publish` with the
//! admin key, `sealrpc key delete` cutting a minion off within the master's
//! one-second poll, and `--auto-accept`.
//!
//! Long-running processes are waited on by what they print; the registry
//! and the cut-off are polled through the CLI in bounded loops (the master
//! notices `sealrpc key` changes by polling every second).
mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::cli::{sealrpc, tmpdir, Proc};

/// The bound on every wait; reaching it fails the test.
const WAIT: Duration = Duration::from_secs(20);

/// A long-running `sealrpc` whose stderr lines are collected as they come.
struct Watched {
    proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Watched {
    fn spawn(args: &[&str]) -> Watched {
        let mut child = sealrpc(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sealrpc");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            proc: Proc { child },
            lines,
        }
    }

    /// The rest of the next stderr line starting with `prefix`.
    fn wait_for(&self, prefix: &str) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(e) => panic!("no line starting with {prefix:?}: {e}"),
            }
        }
    }

    fn running(&mut self) -> bool {
        self.proc.child.try_wait().expect("try_wait").is_none()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn run(args: &[&str]) -> Output {
    sealrpc(args).output().expect("run sealrpc")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn keygen(dir: &Path, id: &str) -> String {
    let out = run(&["keygen", "--pki-dir", s(dir), "--id", id]);
    assert!(out.status.success(), "{out:?}");
    stdout(&out).trim().to_owned()
}

/// A master with `--pki-dir`, listening on each of `listen`.
fn master(pki: &Path, listen: &[&str], extra: &[&str]) -> (Watched, Vec<String>) {
    let mut args = vec!["master", "--pki-dir", s(pki)];
    for l in listen {
        args.extend(["--listen", l]);
    }
    args.extend_from_slice(extra);
    let m = Watched::spawn(&args);
    let urls = listen
        .iter()
        .map(|_| m.wait_for("sealrpc master listening on "))
        .collect();
    (m, urls)
}

fn minion(url: &str, id: &str, pki: &Path) -> Watched {
    Watched::spawn(&["minion", "--master", url, "--id", id, "--pki-dir", s(pki)])
}

/// `sealrpc key --pki-dir DIR list` as (state, id, fingerprint) rows.
fn key_list(pki: &Path) -> Vec<(String, String, String)> {
    let out = run(&["key", "--pki-dir", s(pki), "list"]);
    assert!(out.status.success(), "{out:?}");
    stdout(&out)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

fn has_key(pki: &Path, state: &str, id: &str) -> bool {
    key_list(pki)
        .iter()
        .any(|(st, i, _)| st == state && i == id)
}

fn key(pki: &Path, action: &str, id: &str) -> Output {
    let out = run(&["key", "--pki-dir", s(pki), action, id]);
    assert!(out.status.success(), "{out:?}");
    out
}

/// Polls `cond` every 100 ms, up to `WAIT`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sealrpc publish --pki-dir DIR` (the admin key) to `target`.
fn publish(url: &str, pki: &Path, target: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "publish",
        "--master",
        url,
        "--pki-dir",
        s(pki),
        "--target",
        target,
        "--timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    args.push("test.ping");
    run(&args)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

#[test]
fn keygen_writes_a_private_key_pair_once() {
    let dir = tmpdir("ident-keygen");
    let pki = dir.join("pki");
    let fp = keygen(&pki, "m1");
    let key = pki.join("m1.key");
    let mode = std::fs::metadata(&key)
        .expect("m1.key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let public = std::fs::read_to_string(pki.join("m1.pub")).expect("m1.pub");
    let public = sealrpc::pki::PublicKey::from_hex(&public).expect("public key");
    assert_eq!(
        fp,
        public.fingerprint(),
        "prints the public key's fingerprint"
    );
    let secret = std::fs::read(&key).expect("read");
    let again = run(&["keygen", "--pki-dir", s(&pki), "--id", "m1"]);
    assert!(!again.status.success(), "never overwrites");
    assert!(stderr(&again).contains("already exists"), "{again:?}");
    assert_eq!(std::fs::read(&key).expect("read"), secret);
    let bad = run(&["keygen", "--pki-dir", s(&pki), "--id", "../m1"]);
    assert!(!bad.status.success(), "{bad:?}");
    assert!(!dir.join("m1.key").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// keygen → pending → `key accept` → ready → `publish` → `key delete` →
/// cut off within the master's poll (and filed as pending again when it
/// retries), while a second minion keeps answering.
#[test]
fn accept_publish_and_delete_with_the_cli() {
    let dir = tmpdir("ident-flow");
    let mpki = dir.join("master");
    let (mut master, urls) = master(&mpki, &["zmq://127.0.0.1:0", "tcp://127.0.0.1:0"], &[]);
    let (zmq, tcp) = (&urls[0], &urls[1]);
    assert!(mpki.join("admin.key").exists() && mpki.join("master.pub").exists());

    let m1_pki = dir.join("m1");
    let m1_fp = keygen(&m1_pki, "m1");
    let mut m1 = minion(zmq, "m1", &m1_pki);
    eventually("m1 pending", || has_key(&mpki, "pending", "m1"));
    let listed = key_list(&mpki);
    assert_eq!(
        listed,
        [("pending".to_owned(), "m1".to_owned(), m1_fp.clone())]
    );
    // Not let in while pending: nothing to publish to.
    let none = publish(tcp, &mpki, "*", &[]);
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("matches no connected minion"),
        "{none:?}"
    );
    assert!(m1.running());

    let accepted = key(&mpki, "accept", "m1");
    assert!(
        stdout(&accepted).contains("accepted  m1 (was pending)"),
        "{accepted:?}"
    );
    m1.wait_for("sealrpc minion m1 ready");
    let out = publish(tcp, &mpki, "*", &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out), serde_json::json!({"m1": true}));
    // The minion's own key is no publisher. (`publish` tells no minion id
    // in its handshake, so the master refuses the handshake itself; a
    // connection that does say the id gets `permission denied` instead,
    // see tests/identity.rs.)
    let denied = publish(tcp, &m1_pki, "*", &["--as-identity", "m1"]);
    assert!(!denied.status.success());
    assert!(denied.stdout.is_empty(), "nothing ran: {denied:?}");
    let why = stderr(&denied);
    assert!(
        why.contains("did not accept our identity") || why.contains("permission denied"),
        "{why}"
    );

    // A second minion, also over ZeroMQ (so that deleting m1 rotates the
    // publish key under it).
    let m2_pki = dir.join("m2");
    keygen(&m2_pki, "m2");
    let mut m2 = minion(zmq, "m2", &m2_pki);
    eventually("m2 pending", || has_key(&mpki, "pending", "m2"));
    key(&mpki, "accept", "m2");
    m2.wait_for("sealrpc minion m2 ready");
    let out = publish(tcp, &mpki, "*", &[]);
    assert_eq!(json(&out), serde_json::json!({"m1": true, "m2": true}));

    // Delete m1: within the master's 1 s poll it is cut off.
    let deleted = key(&mpki, "delete", "m1");
    assert!(stdout(&deleted).contains("deleted   m1"), "{deleted:?}");
    eventually("m1 cut off", || {
        let out = publish(tcp, &mpki, "m1", &[]);
        !out.status.success() && stderr(&out).contains("matches no connected minion")
    });
    // It retries and is filed as pending again: never let back in by itself.
    eventually("m1 pending again", || has_key(&mpki, "pending", "m1"));
    assert!(m1.running(), "the minion keeps retrying");
    // m2 keeps answering, across the publish key rotation.
    for _ in 0..3 {
        let out = publish(tcp, &mpki, "*", &[]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(json(&out), serde_json::json!({"m2": true}));
    }
    let both = publish(tcp, &mpki, "m1,m2", &[]);
    assert!(!both.status.success());
    assert_eq!(json(&both), serde_json::json!({"m2": true}));
    assert!(
        stderr(&both).contains("did not return: m1"),
        "{}",
        stderr(&both)
    );

    assert!(m2.proc.terminate().success());
    assert!(m1.proc.terminate().success());
    assert!(master.proc.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_accept_lets_a_new_minion_in_at_once() {
    let dir = tmpdir("ident-auto");
    let mpki = dir.join("master");
    let (mut master, urls) = master(&mpki, &["tcp://127.0.0.1:0"], &["--auto-accept"]);
    let m1_pki = dir.join("m1");
    let fp = keygen(&m1_pki, "m1");
    let mut m1 = minion(&urls[0], "m1", &m1_pki);
    m1.wait_for("sealrpc minion m1 ready");
    assert_eq!(
        key_list(&mpki),
        [("accepted".to_owned(), "m1".to_owned(), fp)]
    );
    let pinned = std::fs::read(m1_pki.join("master.pub")).expect("TOFU pin");
    assert_eq!(pinned, std::fs::read(mpki.join("master.pub")).expect("key"));
    let out = publish(&urls[0], &mpki, "*", &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out), serde_json::json!({"m1": true}));
    assert!(m1.proc.terminate().success());
    assert!(master.proc.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}
