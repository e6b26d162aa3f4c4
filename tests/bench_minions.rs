//! `sealrpc bench --minions N` with the real binary: the report (every
//! minion returned, none missing, the master's RSS measured), each
//! transport, bad options refused, and no master process or PKI dir left
//! behind, even when the bench itself is killed. No timing assertions.
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sealrpc");

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run sealrpc bench")
}

/// Processes whose command line mentions `needle` (the bench's PKI dir).
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// The PKI dirs a bench with this pid made (under /dev/shm or the temp dir).
fn pki_dirs(bench_pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("sealrpc-bench-minions-{bench_pid}-");
    let mut found = Vec::new();
    for base in [std::path::PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(entry.path());
            }
        }
    }
    found
}

fn check_report(json: &serde_json::Value, transport: &str, n: u64) {
    let num = |k: &str| json[k].as_f64().unwrap_or_else(|| panic!("{k} in {json}"));
    assert_eq!(json["transport"], transport, "{json}");
    assert_eq!(json["minions"], n, "{json}");
    assert_eq!(json["connected"], n, "{json}");
    assert_eq!(json["returned"], n, "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(json["missing"], 0, "{json}");
    assert!(
        json["master_peak_rss_kib"].as_u64().unwrap_or(0) > 0,
        "{json}"
    );
    for k in ["connect_ms", "setup_ms", "publish_to_last_return_ms"] {
        assert!(num(k) > 0.0, "{k} in {json}");
    }
    assert!(num("setup_ms") <= num("connect_ms"), "{json}");
    for k in ["master_cpu_connect_s", "master_cpu_publish_s"] {
        assert!(num(k) >= 0.0, "{k} in {json}");
    }
}

#[test]
fn twenty_minions_all_return_and_nothing_is_left_behind() {
    let json = std::env::temp_dir().join(format!("sealrpc-bench-m20-{}.json", std::process::id()));
    let child = Command::new(BIN)
        .args(["bench", "--minions", "20", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sealrpc bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    for col in [
        "transport",
        "minions",
        "connect ms",
        "returned",
        "missing",
        "rss MiB",
    ] {
        assert!(header.contains(col), "{col} in {table}");
    }
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(row[..2], ["tcp", "20"], "{table}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let _ = std::fs::remove_file(&json);
    let report: serde_json::Value = serde_json::from_str(&text).expect("a JSON object");
    check_report(&report, "tcp", 20);
    assert!(pki_dirs(pid).is_empty(), "{:?}", pki_dirs(pid));
    let needle = format!("sealrpc-bench-minions-{pid}-");
    assert!(
        processes_with(&needle).is_empty(),
        "{:?}",
        processes_with(&needle)
    );
}

#[test]
fn websocket_and_zeromq_minions_all_return() {
    for transport in ["ws", "zmq"] {
        let json = std::env::temp_dir().join(format!(
            "sealrpc-bench-m5-{transport}-{}.json",
            std::process::id()
        ));
        let out = Command::new(BIN)
            .args([
                "bench",
                "--minions",
                "5",
                "--transport",
                transport,
                "--json",
            ])
            .arg(&json)
            .output()
            .expect("run sealrpc bench");
        assert!(out.status.success(), "{transport}: {out:?}");
        let text = std::fs::read_to_string(&json).expect("json written");
        let _ = std::fs::remove_file(&json);
        check_report(&serde_json::from_str(&text).expect("JSON"), transport, 5);
    }
}

#[test]
fn bad_minion_options_are_refused() {
    for (args, says) in [
        (&["--minions", "0"][..], "--minions"),
        (&["--minions", "5", "--transport", "all"], "one --transport"),
        (&["--minions", "5", "--size", "64"], "cannot be used with"),
        (&["--minions", "5", "--job-timeout", "0"], "--job-timeout"),
        (
            &["--job-timeout", "5", "--requests", "10"],
            "needs --minions",
        ),
    ] {
        let out = bench(args);
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error") && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

/// Killing the bench (SIGKILL: no cleanup runs) takes the master with it.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_bench_leaves_no_master_running() {
    let mut child = Command::new(BIN)
        .args(["bench", "--minions", "3000", "--job-timeout", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run sealrpc bench");
    let needle = format!("sealrpc-bench-minions-{}-", child.id());
    let started = Instant::now();
    // Only the master's command line names the PKI dir.
    while processes_with(&needle).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the master never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill the bench");
    child.wait().expect("reap the bench");
    let killed = Instant::now();
    while !processes_with(&needle).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "master still running: {:?}",
            processes_with(&needle)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for dir in pki_dirs(child.id()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
