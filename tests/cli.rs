//! The `sealrpc` binary end to end: keygen, master, call, exit codes,
//! SIGTERM shutdown with span flush, the file exporter, TRACEPARENT.
mod support;

use std::path::Path;
use std::process::Output;
#[cfg(feature = "otel")]
use support::cli::spans_in;
use support::cli::{keygen, sealrpc, tmpdir, Master};

fn call(master: &Master, key: &Path, args: &[&str]) -> Output {
    let mut a = vec![
        "call",
        "--master",
        &master.url,
        "--key",
        key.to_str().expect("utf8"),
    ];
    a.extend_from_slice(args);
    sealrpc(&a).output().expect("run call")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("keygen");
    let key = keygen(&dir, "k");
    let mode = std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&key).expect("read").trim().len(),
        64
    );
    let again = sealrpc(&["keygen", "--out", key.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn calls_print_json_and_errors_exit_non_zero_with_one_line() {
    let dir = tmpdir("calls");
    let key = keygen(&dir, "k");
    let mut master = Master::start(&key, &[]);

    let ping = call(&master, &key, &["test.ping"]);
    assert!(ping.status.success(), "{ping:?}");
    assert_eq!(text(&ping.stdout).trim(), "true");

    let echo = call(
        &master,
        &key,
        &["test.echo", "hello", "42", r#"{"a":[1,2]}"#],
    );
    assert!(echo.status.success(), "{echo:?}");
    let v: serde_json::Value = serde_json::from_slice(&echo.stdout).expect("json");
    assert_eq!(v, serde_json::json!(["hello", 42, {"a": [1, 2]}]));

    let one = call(&master, &key, &["test.echo", "solo"]);
    assert_eq!(text(&one.stdout).trim(), "\"solo\"");

    let fail = call(&master, &key, &["test.fail"]);
    assert!(!fail.status.success());
    assert_eq!(
        text(&fail.stderr).trim().lines().count(),
        1,
        "one line: {}",
        text(&fail.stderr)
    );
    assert!(
        text(&fail.stderr).contains("remote error: test.fail"),
        "{}",
        text(&fail.stderr)
    );
    assert!(fail.stdout.is_empty());

    let slow = call(&master, &key, &["--timeout", "0.3", "test.sleep", "10"]);
    assert!(!slow.status.success());
    assert!(
        text(&slow.stderr).contains("timed out"),
        "{}",
        text(&slow.stderr)
    );

    let unknown = call(&master, &key, &["no.such"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no such method"),
        "{}",
        text(&unknown.stderr)
    );

    let other_key = keygen(&dir, "other");
    let wrong = call(&master, &other_key, &["test.ping"]);
    assert!(!wrong.status.success());
    let err = text(&wrong.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("refused our envelope"), "{err}");

    // The master kept serving through all of that, then stops cleanly on SIGTERM.
    assert!(call(&master, &key, &["test.ping"]).status.success());
    assert!(master.terminate().success(), "exit 0 on SIGTERM");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tmpdir("bad");
    let missing = sealrpc(&[
        "call",
        "--key",
        dir.join("nope").to_str().expect("utf8"),
        "test.ping",
    ])
    .output()
    .expect("run");
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("key file"),
        "{}",
        text(&missing.stderr)
    );
    let bad = dir.join("bad");
    std::fs::write(&bad, "not hex").expect("write");
    let out = sealrpc(&["call", "--key", bad.to_str().expect("utf8"), "test.ping"])
        .output()
        .expect("run");
    assert!(
        text(&out.stderr).contains("64 hexadecimal"),
        "{}",
        text(&out.stderr)
    );
    let key = keygen(&dir, "k");
    let url = sealrpc(&[
        "call",
        "--master",
        "http://x",
        "--key",
        key.to_str().expect("utf8"),
        "test.ping",
    ])
    .output()
    .expect("run");
    assert!(
        text(&url.stderr).contains("expected tcp://HOST:PORT"),
        "{}",
        text(&url.stderr)
    );
    let exp = sealrpc(&[
        "call",
        "--trace-exporter",
        "jaeger",
        "--key",
        key.to_str().expect("utf8"),
        "test.ping",
    ])
    .output()
    .expect("run");
    assert!(!exp.status.success());
    assert!(
        text(&exp.stderr).contains("jaeger"),
        "{}",
        text(&exp.stderr)
    );
}

/// `sealrpc call test.ping` with the file exporter and a TRACEPARENT.
#[cfg(feature = "otel")]
fn traced_call(master: &Master, key: &Path, file: &Path, traceparent: &str) -> Output {
    let mut a = vec![
        "call",
        "--master",
        &master.url,
        "--key",
        key.to_str().expect("utf8"),
    ];
    a.extend_from_slice(&[
        "--trace-exporter",
        "file",
        "--trace-file",
        file.to_str().expect("utf8"),
        "test.ping",
    ]);
    sealrpc(&a)
        .env("TRACEPARENT", traceparent)
        .output()
        .expect("call")
}

#[cfg(feature = "otel")]
#[cfg(feature = "otel")]
fn named<'a>(spans: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[cfg(feature = "otel")]
#[test]
fn one_trace_from_a_shell_traceparent_through_cli_and_master_flushed_on_sigterm() {
    let dir = tmpdir("trace");
    let key = keygen(&dir, "k");
    let (master_file, cli_file) = (dir.join("master.jsonl"), dir.join("cli.jsonl"));
    let mut master = Master::start(
        &key,
        &[
            "--trace-exporter",
            "file",
            "--trace-file",
            master_file.to_str().expect("utf8"),
        ],
    );
    let out = traced_call(
        &master,
        &key,
        &cli_file,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    assert!(out.status.success(), "{out:?}");
    // The CLI flushed its spans before exiting: root and client are there.
    let cli = spans_in(&cli_file);
    let root = named(&cli, "sealrpc call test.ping");
    let client = named(&cli, "test.ping");
    assert_eq!(root["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        root["parentSpanId"], "00f067aa0ba902b7",
        "continues the shell's trace"
    );
    assert_eq!(client["parentSpanId"], root["spanId"]);
    assert_eq!(client["kind"], 3, "CLIENT");
    // The master flushes on SIGTERM.
    assert!(master.terminate().success());
    let m = spans_in(&master_file);
    let server = named(&m, "test.ping");
    assert_eq!(server["kind"], 2, "SERVER");
    assert_eq!(server["traceId"], root["traceId"]);
    assert_eq!(server["parentSpanId"], client["spanId"]);
}

#[cfg(feature = "otel")]
#[test]
fn an_invalid_traceparent_warns_and_starts_a_new_trace() {
    let dir = tmpdir("badtp");
    let key = keygen(&dir, "k");
    let mut master = Master::start(&key, &[]);
    let cli_file = dir.join("cli.jsonl");
    let out = traced_call(
        &master,
        &key,
        &cli_file,
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    );
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("warning: ignoring TRACEPARENT"),
        "{}",
        text(&out.stderr)
    );
    let root = named(&spans_in(&cli_file), "sealrpc call test.ping").clone();
    assert!(
        root["parentSpanId"].as_str().unwrap_or_default().is_empty(),
        "a new root: {root}"
    );
    assert_ne!(root["traceId"], "00000000000000000000000000000000");
    assert!(master.terminate().success());
}

#[test]
fn tracing_config_file_is_read_and_env_disables() {
    let dir = tmpdir("cfg");
    let key = keygen(&dir, "k");
    let mut master = Master::start(&key, &[]);
    let out_file = dir.join("from-config.jsonl");
    let cfg = dir.join("sealrpc.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tracing]\nexporter = \"file\"\nfile = {:?}\nservice_name = \"from-config\"\n",
            out_file
        ),
    )
    .expect("write");
    let base = [
        "call",
        "--master",
        &master.url,
        "--key",
        key.to_str().expect("utf8"),
        "--config",
        cfg.to_str().expect("utf8"),
        "test.ping",
    ];
    let on = sealrpc(&base).output().expect("call");
    if cfg!(feature = "otel") {
        assert!(on.status.success(), "{on:?}");
        let text = std::fs::read_to_string(&out_file).expect("spans written");
        assert!(text.contains("from-config"), "service.name from the file");
        std::fs::remove_file(&out_file).expect("rm");
        let off = sealrpc(&base)
            .env("OTEL_SDK_DISABLED", "true")
            .output()
            .expect("call");
        assert!(off.status.success());
        assert!(
            !out_file.exists(),
            "OTEL_SDK_DISABLED=true: nothing exported"
        );
    } else {
        // Tracing asked for but compiled out: a clear error, not silence.
        assert!(!on.status.success());
        assert!(
            text(&on.stderr).contains("without the `otel` feature"),
            "{}",
            text(&on.stderr)
        );
    }
    assert!(master.terminate().success());
}

#[cfg(feature = "otel")]
#[test]
fn ctrl_c_also_flushes_the_masters_spans_and_exits_zero() {
    let dir = tmpdir("sigint");
    let key = keygen(&dir, "k");
    let file = dir.join("master.jsonl");
    let mut master = Master::start(
        &key,
        &[
            "--trace-exporter",
            "file",
            "--trace-file",
            file.to_str().expect("utf8"),
        ],
    );
    assert!(call(&master, &key, &["test.ping"]).status.success());
    assert!(master.signal("-INT").success(), "exit 0 on SIGINT");
    let spans = spans_in(&file);
    assert_eq!(
        named(&spans, "test.ping")["kind"],
        2,
        "the SERVER span was flushed"
    );
}
