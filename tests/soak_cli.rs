//! `sealrpc soak`, small: requests and jobs over every transport through
//! injected cuts and losses, and the accounting it prints and writes.
mod support;

use support::cli::{sealrpc, tmpdir};

#[test]
fn a_small_soak_accounts_for_every_request_and_job() {
    let dir = tmpdir("soak");
    let json = dir.join("soak.json");
    let out = sealrpc(&[
        "soak",
        "--requests",
        "3000",
        "--jobs",
        "20",
        "--fault-rate",
        "0.004",
        "--json",
        json.to_str().expect("utf8"),
    ])
    .output()
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lost 0, duplicated 0"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("json");
    let r = &v["requests"];
    let failed: u64 = r["failed"]
        .as_object()
        .expect("failed by kind")
        .values()
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(r["sent"], 3000);
    assert_eq!(
        r["succeeded"].as_u64().expect("succeeded") + failed,
        3000,
        "{r}"
    );
    assert_eq!(r["duplicated"], 0);
    // Every request that succeeded ran (exactly once: duplicated is 0).
    assert!(r["ran"].as_u64() >= r["succeeded"].as_u64(), "{r}");
    let j = &v["jobs"];
    assert_eq!(j["published"], 20);
    assert_eq!(j["duplicated"], 0);
    // The faults were real.
    let faults = v["cuts"].as_u64().expect("cuts") + v["drops"].as_u64().expect("drops");
    assert!(faults > 0, "no fault injected: {v}");
    assert_eq!(v["transports"], serde_json::json!(["tcp", "ws", "zmq"]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_soak_options_are_refused_with_a_message() {
    for (args, msg) in [
        (
            &["soak", "--fault-rate", "2"][..],
            "--fault-rate must be within 0 to 1",
        ),
        (
            &["soak", "--timeout", "0"][..],
            "--timeout must be a positive number",
        ),
        (
            &["soak", "--transport", "udp", "--requests", "1"][..],
            "udp",
        ),
    ] {
        let out = sealrpc(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(msg), "{args:?}: {stderr}");
    }
}
