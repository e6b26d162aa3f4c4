//! `sealrpc minion` and `sealrpc publish` end to end with the real binary:
//! a master on TCP, WebSocket and ZeroMQ, one minion on each; JSON on
//! stdout, missing and failed minions on stderr and in the exit status;
//! one trace per job from a shell TRACEPARENT through every minion.
mod support;

use std::path::Path;
use std::process::Output;
#[cfg(feature = "otel")]
use support::cli::spans_in;
use support::cli::{keygen, minion, sealrpc, tmpdir, Master};

const LISTEN: [&str; 3] = [
    "tcp://127.0.0.1:0",
    "ws://127.0.0.1:0/sealrpc",
    "zmq://127.0.0.1:0",
];

fn publish(
    master: &Master,
    key: &Path,
    target: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut a = vec![
        "publish",
        "--master",
        &master.url,
        "--key",
        key.to_str().expect("utf8"),
        "--target",
        target,
        "--timeout",
        "10",
    ];
    a.extend_from_slice(args);
    let mut cmd = sealrpc(&a);
    cmd.envs(env.iter().copied());
    cmd.output().expect("run publish")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out:?}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn publish_prints_returns_and_fails_on_missing_or_failed_minions() {
    let dir = tmpdir("publish");
    let key = keygen(&dir, "k");
    let mut master = Master::start_on(&key, &LISTEN, &[]);
    let mut minions: Vec<_> = [("m-tcp", "tcp"), ("m-ws", "ws"), ("m-zmq", "zmq")]
        .into_iter()
        .map(|(id, scheme)| minion(&key, &master.url_of(scheme), id, &[]))
        .collect();

    let all = publish(&master, &key, "*", &["test.ping"], &[]);
    assert!(all.status.success(), "{all:?}");
    assert_eq!(
        json(&all),
        serde_json::json!({"m-tcp": true, "m-ws": true, "m-zmq": true})
    );

    let some = publish(&master, &key, "m-zmq,ghost,m-ws", &["test.echo", "hi"], &[]);
    assert!(!some.status.success(), "a missing minion fails the command");
    assert_eq!(
        json(&some),
        serde_json::json!({"m-ws": "hi", "m-zmq": "hi"})
    );
    assert!(
        stderr(&some).contains("did not return: ghost"),
        "{}",
        stderr(&some)
    );

    let glob = publish(&master, &key, "m-t*", &["test.echo", "[1,2]"], &[]);
    assert!(glob.status.success(), "{glob:?}");
    assert_eq!(json(&glob), serde_json::json!({"m-tcp": [1, 2]}));

    let failed = publish(&master, &key, "m-ws", &["test.fail"], &[]);
    assert!(!failed.status.success());
    assert_eq!(
        json(&failed),
        serde_json::json!({"m-ws": {"error": "test.fail: failing as asked"}})
    );
    assert!(
        stderr(&failed).contains("failed: m-ws"),
        "{}",
        stderr(&failed)
    );

    let none = publish(&master, &key, "nobody*", &["test.ping"], &[]);
    assert!(!none.status.success());
    assert!(none.stdout.is_empty(), "nothing ran, nothing printed");
    assert!(
        stderr(&none).contains("matches no connected minion"),
        "{}",
        stderr(&none)
    );

    for m in &mut minions {
        assert!(m.terminate().success(), "a minion exits 0 on SIGTERM");
    }
    assert!(master.terminate().success());
}

#[cfg(feature = "otel")]
#[test]
fn one_trace_per_job_from_the_shell_through_every_minion_and_back() {
    let dir = tmpdir("publish-trace");
    let key = keygen(&dir, "k");
    let file = |who: &str| dir.join(format!("{who}.jsonl"));
    let flags = |who: &str| {
        vec![
            "--trace-exporter".to_owned(),
            "file".to_owned(),
            "--trace-file".to_owned(),
            file(who).to_str().expect("utf8").to_owned(),
        ]
    };
    let master_flags = flags("master");
    let master_flags: Vec<&str> = master_flags.iter().map(String::as_str).collect();
    let mut master = Master::start_on(&key, &LISTEN, &master_flags);
    let mut minions = Vec::new();
    for (id, scheme) in [("m-tcp", "tcp"), ("m-ws", "ws"), ("m-zmq", "zmq")] {
        let f = flags(id);
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        minions.push(minion(&key, &master.url_of(scheme), id, &f));
    }
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let cli_flags = flags("cli");
    let mut args: Vec<&str> = cli_flags.iter().map(String::as_str).collect();
    args.push("test.ping");
    let out = publish(&master, &key, "*", &args, &[("TRACEPARENT", &traceparent)]);
    assert!(out.status.success(), "{out:?}");
    for m in &mut minions {
        assert!(m.terminate().success());
    }
    assert!(master.terminate().success());

    let mut spans = Vec::new();
    for who in ["cli", "master", "m-tcp", "m-ws", "m-zmq"] {
        spans.extend(spans_in(&file(who)));
    }
    let job: Vec<&serde_json::Value> = spans.iter().filter(|s| s["traceId"] == trace_id).collect();
    let ids: Vec<&serde_json::Value> = job.iter().map(|s| &s["spanId"]).collect();
    let count = |name: &str| job.iter().filter(|s| s["name"] == name).count();
    assert_eq!(count("sealrpc publish test.ping"), 1);
    assert_eq!(count("publish test.ping"), 1, "one PRODUCER");
    assert_eq!(count("process test.ping"), 3, "one CONSUMER per minion");
    assert_eq!(
        count("sealrpc.return"),
        6,
        "a CLIENT and a SERVER span per return"
    );
    for s in &job {
        let parent = &s["parentSpanId"];
        assert!(
            s["name"] == "sealrpc publish test.ping" || ids.contains(&parent),
            "{} has a parent that was not exported",
            s["name"]
        );
    }
    // Spans outside the job's trace are the minions' registrations only.
    for s in spans.iter().filter(|s| s["traceId"] != trace_id) {
        assert!(
            s["name"] == "sealrpc.hello" || s["name"] == "sealrpc.ready",
            "{} is outside the job's trace",
            s["name"]
        );
    }
}
