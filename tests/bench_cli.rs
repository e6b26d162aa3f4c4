//! `sealrpc bench` end to end with tiny parameters: every transport and
//! mode, the JSON rows and their fields (no timing assertions beyond > 0).
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sealrpc");

fn tmpfile(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sealrpc-bench-{name}-{}.json", std::process::id()))
}

#[test]
fn bench_all_transports_both_modes_writes_six_json_rows() {
    let json = tmpfile("all");
    let out = Command::new(BIN)
        .args(["bench", "--requests", "200", "--inflight", "8"])
        .args(["--transport", "all", "--mode", "both", "--json"])
        .arg(&json)
        .output()
        .expect("run sealrpc bench");
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("sealed/raw"), "{table}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let _ = std::fs::remove_file(&json);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a JSON array");
    assert_eq!(rows.len(), 6, "{text}");
    let mut seen = Vec::new();
    for row in &rows {
        let s = |k: &str| row[k].as_str().unwrap_or_else(|| panic!("{k} in {row}"));
        let n = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("{k} in {row}"));
        assert_eq!(s("tracing"), "off");
        assert_eq!(n("size"), 64.0);
        assert_eq!(n("inflight"), 8.0);
        assert_eq!(n("requests"), 200.0);
        for k in ["p50_us", "p99_us", "p999_us", "req_per_s", "mib_per_s"] {
            assert!(n(k) > 0.0, "{k} in {row}");
        }
        assert!(n("p50_us") <= n("p99_us") && n("p99_us") <= n("p999_us"));
        seen.push(format!("{}/{}", s("transport"), s("mode")));
    }
    seen.sort();
    let want = [
        "tcp/raw",
        "tcp/sealed",
        "ws/raw",
        "ws/sealed",
        "zmq/raw",
        "zmq/sealed",
    ];
    assert_eq!(seen, want);
}

#[test]
fn bench_rejects_bad_options() {
    for args in [
        &["--size", "abc"][..],
        &["--inflight", "0"],
        &["--transport", "udp"],
        &["--mode", "fast"],
    ] {
        let out = Command::new(BIN)
            .arg("bench")
            .args(args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

#[cfg(not(feature = "otel"))]
#[test]
fn bench_refuses_tracing_without_otel() {
    let out = Command::new(BIN)
        .args(["bench", "--tracing", "on", "--requests", "10"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("otel"), "{err}");
}
