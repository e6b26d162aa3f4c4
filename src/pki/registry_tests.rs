//! Tests of the minion key registry (`registry.rs`) and its admin
//! operations (`manage.rs`).
use super::*;
use crate::pki::testdir::TestDir;
use KeyState::*;

const A: PublicKey = PublicKey([1; 32]);
const B: PublicKey = PublicKey([2; 32]);
const C: PublicKey = PublicKey([3; 32]);

fn reg(name: &str) -> (TestDir, MinionKeys) {
    let d = TestDir::new(name);
    let keys = MinionKeys::open(d.path()).unwrap();
    (d, keys)
}

fn change(id: &str, from: KeyState, to: KeyState) -> Change {
    Change {
        id: id.to_owned(),
        from,
        to,
    }
}

#[test]
fn open_creates_private_dirs() {
    use std::os::unix::fs::PermissionsExt;
    let (d, _) = reg("reg-open");
    for s in ["accepted", "pending", "rejected", "denied"] {
        let m = std::fs::metadata(d.path().join("minions").join(s)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700, "{s}");
    }
    MinionKeys::open(d.path()).unwrap();
}

#[test]
fn new_minion_is_pending_until_accepted() {
    let (_d, r) = reg("reg-pending");
    assert_eq!(r.state("web1", &A).unwrap(), Unknown);
    assert_eq!(r.observe("web1", &A, false).unwrap(), Pending);
    assert_eq!(r.observe("web1", &A, false).unwrap(), Pending);
    assert!(r.accepted_keys().unwrap().is_empty());
    assert_eq!(
        r.accept("web1").unwrap(),
        vec![change("web1", Pending, Accepted)]
    );
    assert_eq!(
        r.accept("web1").unwrap(),
        vec![],
        "already accepted: no change"
    );
    assert_eq!(r.observe("web1", &A, false).unwrap(), Accepted);
    assert_eq!(r.accepted_keys().unwrap(), vec![("web1".to_owned(), A)]);
}

#[test]
fn auto_accept() {
    let (_d, r) = reg("reg-auto");
    assert_eq!(r.observe("m1", &A, true).unwrap(), Accepted);
    r.observe("m2", &B, false).unwrap();
    assert_eq!(r.observe("m2", &B, true).unwrap(), Accepted);
    assert_eq!(
        r.observe("m2", &C, true).unwrap(),
        Denied,
        "auto-accept never replaces a key"
    );
}

#[test]
fn a_different_key_is_denied_and_never_replaces() {
    for first in [Accepted, Pending, Rejected] {
        let (_d, r) = reg("reg-deny");
        r.observe("web1", &A, false).unwrap();
        match first {
            Accepted => drop(r.accept("web1").unwrap()),
            Rejected => drop(r.reject("web1").unwrap()),
            _ => {}
        }
        assert_eq!(r.observe("web1", &B, true).unwrap(), Denied, "{first}");
        assert_eq!(r.state("web1", &B).unwrap(), Denied);
        assert_eq!(r.read(first, "web1").unwrap(), Some(A), "original kept");
        assert_eq!(r.read(Denied, "web1").unwrap(), Some(B));
        assert_eq!(
            r.observe("web1", &A, false).unwrap(),
            first,
            "the original still works"
        );
        assert_eq!(r.observe("web1", &C, false).unwrap(), Denied);
        assert_eq!(
            r.read(Denied, "web1").unwrap(),
            Some(C),
            "latest attempt recorded"
        );
        let e = r.accept("web1").unwrap_err();
        assert!(
            matches!(e, PkiError::Denied { .. }) && e.to_string().contains("delete"),
            "{e}"
        );
        assert_eq!(
            r.accept_all().unwrap(),
            vec![],
            "accept --all skips denied ids"
        );
        assert_eq!(r.delete("web1").unwrap().len(), 2);
        assert_eq!(
            r.observe("web1", &B, false).unwrap(),
            Pending,
            "after delete: a new key"
        );
    }
}

#[test]
fn rejected_stays_rejected() {
    let (_d, r) = reg("reg-reject");
    r.observe("m1", &A, false).unwrap();
    assert_eq!(
        r.reject("m1").unwrap(),
        vec![change("m1", Pending, Rejected)]
    );
    assert_eq!(r.observe("m1", &A, true).unwrap(), Rejected);
    assert_eq!(r.reject("m1").unwrap(), vec![]);
    assert_eq!(
        r.accept("m1").unwrap(),
        vec![change("m1", Rejected, Accepted)]
    );
    assert_eq!(
        r.reject("m1").unwrap(),
        vec![change("m1", Accepted, Rejected)]
    );
    assert!(r.accepted_keys().unwrap().is_empty());
}

#[test]
fn list_sorted_by_state_then_id() {
    let (_d, r) = reg("reg-list");
    for (id, k) in [("b", A), ("a", B), ("c", C), ("d", A)] {
        r.observe(id, &k, false).unwrap();
    }
    r.accept("c").unwrap();
    r.reject("d").unwrap();
    r.observe("c", &A, false).unwrap();
    std::fs::write(r.path(Pending, "x").with_file_name("x~1~1.tmp"), "junk").unwrap();
    let got: Vec<(String, KeyState)> = r
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.state))
        .collect();
    let want = [
        ("c", Accepted),
        ("a", Pending),
        ("b", Pending),
        ("d", Rejected),
        ("c", Denied),
    ];
    let want: Vec<(String, KeyState)> = want.iter().map(|(i, s)| (i.to_string(), *s)).collect();
    assert_eq!(got, want);
    assert_eq!(r.list().unwrap()[0].fingerprint, C.fingerprint());
}

#[test]
fn bulk_operations() {
    let (_d, r) = reg("reg-bulk");
    for id in ["m1", "m2", "m3"] {
        r.observe(id, &A, false).unwrap();
    }
    r.accept("m1").unwrap();
    let rejected = r.reject_all().unwrap();
    assert_eq!(
        rejected,
        vec![
            change("m2", Pending, Rejected),
            change("m3", Pending, Rejected)
        ]
    );
    assert_eq!(
        r.state("m1", &A).unwrap(),
        Accepted,
        "reject --all leaves accepted keys"
    );
    r.observe("m4", &A, false).unwrap();
    assert_eq!(
        r.accept_all().unwrap(),
        vec![change("m4", Pending, Accepted)]
    );
    assert_eq!(r.delete_all().unwrap().len(), 4);
    assert!(r.list().unwrap().is_empty());
    assert_eq!(r.delete_all().unwrap(), vec![]);
}

#[test]
fn unknown_ids_and_bad_ids() {
    let (d, r) = reg("reg-bad");
    assert!(matches!(
        r.accept("nope"),
        Err(PkiError::UnknownMinion { .. })
    ));
    assert!(matches!(
        r.delete("nope"),
        Err(PkiError::UnknownMinion { .. })
    ));
    r.observe("m1", &A, false).unwrap();
    assert_eq!(
        r.reject("m1").unwrap(),
        vec![change("m1", Pending, Rejected)]
    );
    r.observe("m2", &A, false).unwrap();
    r.observe("m2", &B, false).unwrap();
    r.delete("m2").unwrap();
    std::fs::write(r.path(Denied, "m3"), B.file_text()).unwrap();
    assert!(matches!(r.reject("m3"), Err(PkiError::NothingTo { .. })));
    for bad in ["../../etc/passwd", "a/b", "..", "", "a\0b", "x..y", "/abs"] {
        assert!(
            matches!(r.observe(bad, &A, true), Err(PkiError::BadId(_))),
            "{bad:?}"
        );
        assert!(matches!(r.state(bad, &A), Err(PkiError::BadId(_))));
        assert!(matches!(r.accept(bad), Err(PkiError::BadId(_))));
        assert!(matches!(r.reject(bad), Err(PkiError::BadId(_))));
        assert!(matches!(r.delete(bad), Err(PkiError::BadId(_))));
    }
    assert!(!d.path().join("etc").exists() && !d.path().join("minions/a").exists());
}

#[test]
fn files_hold_the_hex_key_and_errors_hide_it() {
    let (_d, r) = reg("reg-files");
    r.observe("m1", &A, false).unwrap();
    let text = std::fs::read_to_string(r.path(Pending, "m1")).unwrap();
    assert_eq!(text.trim(), A.to_hex());
    std::fs::write(r.path(Pending, "m1"), "zz").unwrap();
    let e = r.observe("m1", &A, false).unwrap_err();
    assert!(matches!(e, PkiError::BadKeyFile { .. }) && e.to_string().contains("m1"));
    assert!(r.list().is_err());
    std::fs::write(r.path(Accepted, "m2"), "zz").unwrap();
    std::fs::write(r.path(Accepted, "m3"), B.file_text()).unwrap();
    assert_eq!(
        r.accepted_keys().unwrap(),
        vec![("m3".to_owned(), B)],
        "malformed skipped"
    );
}
