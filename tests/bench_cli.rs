//! `sealrpc bench` end to end with tiny parameters: every transport and
//! mode, the JSON rows and their fields, the SVG chart (no timing
//! assertions beyond > 0).
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sealrpc");

fn tmpfile(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sealrpc-bench-{name}-{}.json", std::process::id()))
}

#[test]
fn bench_all_transports_both_modes_writes_six_json_rows_and_a_chart() {
    let json = tmpfile("all");
    let plot = json.with_extension("svg");
    let out = Command::new(BIN)
        .args(["bench", "--requests", "200", "--inflight", "8"])
        .args(["--transport", "all", "--mode", "both", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("run sealrpc bench");
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("sealed/raw"), "{table}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let _ = std::fs::remove_file(&json);
    let svg = std::fs::read_to_string(&plot).expect("chart written");
    let _ = std::fs::remove_file(&plot);
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
    check_chart(&svg, &rows);
}

/// A well-formed SVG with the run's parameters in its text, and a p50, a
/// p99 and a throughput bar for each JSON row, titled with that row.
fn check_chart(svg: &str, rows: &[serde_json::Value]) {
    let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
    assert!(doc.root_element().has_tag_name("svg"), "{svg}");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    let title = texts.first().copied().unwrap_or_default();
    assert!(
        title.contains("200 requests") && title.contains("8 in flight"),
        "{title}"
    );
    for want in [
        "latency (1 in flight)",
        "throughput (8 in flight)",
        "tcp",
        "zmq",
        "ws",
        "64 B",
    ] {
        assert!(texts.contains(&want), "{want} in {texts:?}");
    }
    for class in ["p50", "p99", "rps"] {
        let bars: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some(class))
            .collect();
        assert_eq!(bars.len(), rows.len(), "{class} bars");
        for (i, row) in rows.iter().enumerate() {
            let bar = bars
                .iter()
                .find(|n| n.attribute("data-row") == Some(&i.to_string()))
                .unwrap_or_else(|| panic!("no {class} bar for row {i}"));
            let height: f64 = bar
                .attribute("height")
                .and_then(|h| h.parse().ok())
                .unwrap();
            assert!(height > 0.0, "{class} bar {i}");
            let tip = bar
                .first_element_child()
                .and_then(|t| t.text())
                .unwrap_or_default();
            let (t, m) = (
                row["transport"].as_str().unwrap(),
                row["mode"].as_str().unwrap(),
            );
            assert!(
                tip.starts_with(&format!("{t} 64 B {m} ")),
                "{tip} for {row}"
            );
        }
    }
}

#[test]
fn bench_plot_to_an_unwritable_path_is_a_clear_error() {
    let plot = std::env::temp_dir()
        .join("sealrpc-no-such-dir")
        .join("chart.svg");
    let out = Command::new(BIN)
        .args(["bench", "--requests", "10", "--mode", "raw", "--plot"])
        .arg(&plot)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: --plot") && err.contains("chart.svg"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
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
