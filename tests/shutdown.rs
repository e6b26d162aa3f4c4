//! Graceful shutdown of the real `sealrpc master` and `sealrpc minion`
//! binaries on SIGTERM (issue #6, faults). Every step waits on an event:
//! a line the process prints, a reply arriving, the process closing its
//! stderr as it exits. Timeouts are upper bounds that fail the test.
//!
//! What the master must do (see `src/channel/drain.rs`): stop accepting at
//! once (new connections refused by the OS), refuse new requests on open
//! connections with a typed `Overloaded`, let requests in flight finish
//! (and jobs in flight collect their returns) within `--grace`, cancel
//! what outlasts it with a typed error for its caller, flush every span
//! and exit 0. The minion: run no new job (answering each with a failed
//! return), let running jobs finish and return within `--grace`, stop and
//! fail those that outlast it, flush, exit 0.
//!
//! The spans are read from the file exporter: this suite needs the `otel`
//! feature (the default).
#![cfg(feature = "otel")]
#[allow(dead_code)]
#[path = "support/cli.rs"]
mod cli;

use bytes::Bytes;
use cli::{keygen, sealrpc, spans_in, tmpdir};
use sealrpc::builtin::{args_body, body_json};
use sealrpc::channel::{ChannelConfig, Client, Router, Server};
use sealrpc::job::{self, JobReport, PublishRequest};
use sealrpc::keys::Key;
use sealrpc::master::{Master, MasterOptions};
use sealrpc::minion::{Minion, MinionOptions};
use sealrpc::Error;
use serde_bytes::ByteBuf;
use serde_json::Value;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Upper bound on any single wait: a failure guard, never reached by a
/// passing run.
const GUARD: Duration = Duration::from_secs(60);

async fn guard<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing happened within {GUARD:?}"),
    }
}

/// A `sealrpc` process whose stderr lines arrive on a channel; the
/// channel closes when the process closes its stderr (it exited).
struct Proc {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line seen so far (for failure messages).
    seen: Vec<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = sealrpc(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sealrpc");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; returns the rest of it.
    async fn line(&mut self, prefix: &str) -> String {
        loop {
            let next = tokio::time::timeout(GUARD, self.lines.recv()).await;
            match next {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Ok(None) => panic!("exited before printing {prefix:?}: {:#?}", self.seen),
                Err(_) => panic!("no {prefix:?} within {GUARD:?}: {:#?}", self.seen),
            }
        }
    }

    fn sigterm(&self) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
    }

    /// Waits until the process has closed its stderr (it exits), then
    /// returns its exit status and what it printed.
    async fn exit(&mut self) -> (ExitStatus, Vec<String>) {
        loop {
            match tokio::time::timeout(GUARD, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => break,
                Err(_) => panic!("did not exit within {GUARD:?}: {:#?}", self.seen),
            }
        }
        let status = self.child.wait().expect("wait");
        (status, self.seen.clone())
    }
}

impl Drop for Proc {
    /// A failed assertion must not leave a process running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A client of the master with the shared key: no reconnects (a refused
/// connection must surface as the call's error), 60 s calls.
fn client_config(key: &Path) -> ChannelConfig {
    let mut cfg = ChannelConfig::new(Key::load(key).expect("key"));
    cfg.reconnect = None;
    cfg.timeout = GUARD;
    cfg
}

fn secs(s: f64) -> Bytes {
    args_body(&[s.to_string()]).expect("body")
}

/// `call` polled once, which seals its request into the connection, and
/// then left to run on its own.
async fn sent(
    call: impl Future<Output = Result<Bytes, Error>> + Send + 'static,
) -> tokio::task::JoinHandle<Result<Bytes, Error>> {
    let mut call = Box::pin(call);
    assert!(
        futures::poll!(call.as_mut()).is_pending(),
        "a sleep cannot be answered at once"
    );
    tokio::spawn(call)
}

/// The spans named `name` of kind SERVER (2) or CONSUMER (5) in `spans`.
fn spans_named<'a>(spans: &'a [Value], name: &str, kind: u64) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["name"] == name && s["kind"] == kind)
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

fn is_error(span: &Value) -> bool {
    span["status"]["code"] == 2
}

/// The master, on SIGTERM, with four sleeps in flight (three of 1 s and
/// one of 30 s) and `--grace 3`:
/// (a) refuses new connections (the OS: connection refused) and refuses
///     new requests on open connections with `Error::Overloaded`;
/// (b) answers the three 1 s sleeps with their result;
/// (c) cuts the 30 s sleep at the grace deadline: its caller gets
///     `Error::ConnectionClosed` after about 3 s, not after 30 s;
/// (d) has written every SERVER span when it has exited (the cut one with
///     status error, `error.type` = `cancelled`);
/// (e) exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_master_finishes_in_flight_calls_refuses_new_work_cuts_at_grace_and_flushes() {
    let dir = tmpdir("shutdown-drain");
    let key = keygen(&dir, "k");
    let spans_file = dir.join("master.jsonl");
    let mut master = Proc::start(&[
        "master",
        "--key",
        path(&key),
        "--listen",
        "tcp://127.0.0.1:0",
        "--grace",
        "3",
        "--trace-exporter",
        "file",
        "--trace-file",
        path(&spans_file),
    ]);
    let url = master.line("sealrpc master listening on ").await;
    let addr: std::net::SocketAddr = url
        .strip_prefix("tcp://")
        .expect("tcp url")
        .parse()
        .expect("addr");
    let cfg = client_config(&key);
    let client = Client::connect(&url, cfg.clone()).await.expect("connect");

    // Four sleeps sealed in this order on one connection, then a ping: the
    // master reads a connection's requests in order and starts each
    // handler before it reads the next, so the ping's reply means all
    // four sleeps are running.
    let mut short = Vec::new();
    for _ in 0..3 {
        let c = client.clone();
        short.push(sent(async move { c.call("test.sleep", secs(1.0)).await }).await);
    }
    let c = client.clone();
    let long = sent(async move { c.call("test.sleep", secs(30.0)).await }).await;
    let pong = client.call("test.ping", Bytes::new()).await.expect("ping");
    assert_eq!(body_json(&pong).expect("json"), Value::Bool(true));

    master.sigterm();
    let sigterm = Instant::now();
    let said = master.line("sealrpc master stopping: ").await;
    assert!(said.contains("3s"), "names the grace period: {said}");

    // (a) Stopped accepting: the OS refuses the connection (the listener
    // is closed, not merely left unserved), and the library says why.
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused),
        "a new TCP connection after SIGTERM"
    );
    let err = Client::connect(&url, cfg.clone())
        .await
        .err()
        .expect("connecting after SIGTERM must fail");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    // A new request on the open connection is refused without running.
    let err = client
        .call("test.ping", Bytes::new())
        .await
        .expect_err("a new request while draining");
    assert!(matches!(err, Error::Overloaded(_)), "{err:?}");

    // (b) The calls in flight finish with their result.
    for call in short {
        let reply = guard("a 1 s sleep", call)
            .await
            .expect("join")
            .expect("a sleep in flight at SIGTERM finishes");
        assert_eq!(body_json(&reply).expect("json"), Value::Bool(true));
    }
    // (c) The call that outlasts the grace period ends with a typed error
    // once the grace period is over, not at its own 30 s.
    let err = guard("the 30 s sleep", long)
        .await
        .expect("join")
        .expect_err("cut at the grace deadline");
    let after = sigterm.elapsed();
    assert!(matches!(err, Error::ConnectionClosed), "{err:?}");
    assert!(
        after >= Duration::from_millis(2900) && after < Duration::from_secs(25),
        "cut after {after:?}, the grace period being 3 s"
    );

    // (e) Exit 0, after saying so.
    let (status, said) = master.exit().await;
    assert!(status.success(), "exit status {status:?}: {said:#?}");
    assert!(
        said.iter().any(|l| l == "sealrpc master stopped"),
        "{said:#?}"
    );

    // (d) Every span was flushed before the exit.
    let spans = spans_in(&spans_file);
    let sleeps = spans_named(&spans, "test.sleep", 2);
    assert_eq!(sleeps.len(), 4, "{sleeps:#?}");
    let cut: Vec<_> = sleeps.iter().filter(|s| is_error(s)).collect();
    assert_eq!(cut.len(), 1, "only the 30 s sleep failed: {sleeps:#?}");
    assert_eq!(
        attr(cut[0], "error.type"),
        Some(&serde_json::json!({"stringValue": "cancelled"})),
        "{cut:#?}"
    );
    let pings = spans_named(&spans, "test.ping", 2);
    assert_eq!(pings.len(), 2, "{pings:#?}");
    let refused: Vec<_> = pings.iter().filter(|s| is_error(s)).collect();
    assert_eq!(refused.len(), 1, "{pings:#?}");
    assert_eq!(
        attr(refused[0], "error.type"),
        Some(&serde_json::json!({"stringValue": "overloaded"})),
        "{refused:#?}"
    );
}

/// A minion (in this process) whose `gate` job reports it started and then
/// waits for the test to open the gate.
fn gated_minion_router(started: mpsc::UnboundedSender<()>, gate: GateRx) -> Router {
    Router::new().route("gate", move |_req| {
        let (started, gate) = (started.clone(), gate.clone());
        async move {
            let _ = started.send(());
            let mut open = gate;
            let _ = open.wait_for(|o| *o).await;
            Ok(Bytes::from_static(&[0xc3])) // MessagePack `true`
        }
    })
}

type GateRx = tokio::sync::watch::Receiver<bool>;

/// A job being published when the master gets SIGTERM still collects its
/// return: the master keeps serving `sealrpc.return` while it drains, the
/// `publish` call gets the full report, and the master then exits at once
/// (long before its 30 s grace period), with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_master_lets_a_job_in_flight_collect_its_return() {
    let dir = tmpdir("shutdown-publish");
    let key = keygen(&dir, "k");
    let mut master = Proc::start(&[
        "master",
        "--key",
        path(&key),
        "--listen",
        "tcp://127.0.0.1:0",
        "--grace",
        "30",
    ]);
    let url = master.line("sealrpc master listening on ").await;
    let cfg = client_config(&key);

    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let minion = Minion::new(
        &url,
        "m1",
        gated_minion_router(started_tx, gate),
        cfg.clone(),
        MinionOptions::default(),
    )
    .expect("minion");
    let mut ready = minion.ready();
    let (stop_minion, minion_stop) = oneshot::channel::<()>();
    let minion_task = tokio::spawn(minion.run(async {
        let _ = minion_stop.await;
    }));
    guard("the minion registers", ready.wait_for(|r| *r))
        .await
        .expect("ready");

    let publisher = Client::connect(&url, cfg.clone()).await.expect("connect");
    let request = PublishRequest {
        target: "m1".into(),
        method: "gate".into(),
        body: ByteBuf::new(),
        timeout_ms: 30_000,
    };
    let publishing = tokio::spawn(async move {
        publisher
            .call_value::<_, JobReport>(job::PUBLISH, &request)
            .await
    });
    guard("the job starts on the minion", started.recv())
        .await
        .expect("started");

    master.sigterm();
    let sigterm = Instant::now();
    master.line("sealrpc master stopping: ").await;
    // Registering is new work: refused while the master drains.
    let late = Client::connect(&url, cfg.clone()).await;
    assert!(late.is_err(), "a connection after SIGTERM");

    open_gate.send_replace(true);
    let report = guard("the publish report", publishing)
        .await
        .expect("join")
        .expect("the publish in flight at SIGTERM completes");
    assert!(report.missing.is_empty(), "{report:?}");
    assert!(report.returns["m1"].ok, "{report:?}");

    let (status, said) = master.exit().await;
    assert!(status.success(), "exit status {status:?}: {said:#?}");
    let took = sigterm.elapsed();
    assert!(
        took < Duration::from_secs(25),
        "the drain ended when the work did, not at the 30 s grace: {took:?}"
    );
    let _ = stop_minion.send(());
    guard("the minion stops", minion_task)
        .await
        .expect("join")
        .expect("minion");
}

/// A `sealrpc minion` on SIGTERM (`--grace 5`), with a 1 s job and a 60 s
/// job running: the 1 s job finishes and returns its result; a job
/// published after SIGTERM is not run but fails at once with the reason;
/// the 60 s job is stopped at the grace deadline and returns a failure
/// (its publisher is not left waiting out its 60 s timeout); every
/// CONSUMER span is in the minion's file when it has exited 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_minion_finishes_running_jobs_refuses_new_ones_fails_the_overdue_and_flushes() {
    let dir = tmpdir("shutdown-minion");
    let key = keygen(&dir, "k");
    let spans_file = dir.join("minion.jsonl");
    let cfg = client_config(&key);
    let master = Master::bind(
        &["tcp://127.0.0.1:0"],
        Router::new(),
        cfg.clone(),
        MasterOptions::default(),
    )
    .await
    .expect("bind");
    let url = master.local_urls().expect("urls").remove(0);
    let jobs = master.handle();
    let (stop_master, master_stop) = oneshot::channel::<()>();
    let master_task = tokio::spawn(master.run(async {
        let _ = master_stop.await;
    }));

    let mut minion = Proc::start(&[
        "minion",
        "--master",
        &url,
        "--id",
        "m1",
        "--key",
        path(&key),
        "--grace",
        "5",
        "--trace-exporter",
        "file",
        "--trace-file",
        path(&spans_file),
    ]);
    minion.line("sealrpc minion m1 ready").await;
    guard("m1 registered", jobs.wait_for_minions(1)).await;

    // Two jobs published in this order, then a ping: the minion takes a
    // connection's jobs in order and starts each before it takes the next,
    // so the ping's return means both are running.
    let publish = |method: &'static str, body: Bytes, timeout: Duration| {
        let jobs = jobs.clone();
        async move { jobs.publish("m1", method, body, timeout).await }
    };
    let mut short = Box::pin(publish("test.sleep", secs(1.0), GUARD));
    assert!(futures::poll!(short.as_mut()).is_pending());
    let mut long = Box::pin(publish("test.sleep", secs(60.0), GUARD));
    assert!(futures::poll!(long.as_mut()).is_pending());
    let (short, long) = (tokio::spawn(short), tokio::spawn(long));
    let ping = publish("test.ping", Bytes::new(), GUARD)
        .await
        .expect("ping");
    assert!(ping.all_ok(), "{ping:?}");

    minion.sigterm();
    let sigterm = Instant::now();
    let said = minion.line("sealrpc minion m1 stopping: ").await;
    assert!(said.contains("5s"), "names the grace period: {said}");

    // A job published now is answered at once: not run, and why.
    let late = publish("test.ping", Bytes::new(), GUARD)
        .await
        .expect("publish");
    let r = &late.returns["m1"];
    assert!(!r.ok, "{late:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("shutting down: the job was not run"),
        "{late:?}"
    );
    assert!(
        sigterm.elapsed() < Duration::from_secs(4),
        "refused at once, not after the running jobs: {:?}",
        sigterm.elapsed()
    );

    // The running 1 s job finishes and returns its result.
    let done = guard("the 1 s job", short)
        .await
        .expect("join")
        .expect("publish");
    assert!(done.all_ok(), "{done:?}");
    // The 60 s job is stopped at the grace deadline and fails, with why.
    let cut = guard("the 60 s job", long)
        .await
        .expect("join")
        .expect("publish");
    let after = sigterm.elapsed();
    let r = &cut.returns["m1"];
    assert!(!r.ok, "{cut:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("shut down before the job finished"),
        "{cut:?}"
    );
    assert!(
        after >= Duration::from_millis(4900) && after < Duration::from_secs(30),
        "stopped after {after:?}, the grace period being 5 s"
    );

    let (status, said) = minion.exit().await;
    assert!(status.success(), "exit status {status:?}: {said:#?}");
    let spans = spans_in(&spans_file);
    let sleeps = spans_named(&spans, "process test.sleep", 5);
    assert_eq!(sleeps.len(), 2, "{spans:#?}");
    assert_eq!(
        sleeps.iter().filter(|s| is_error(s)).count(),
        1,
        "{sleeps:#?}"
    );
    let pings = spans_named(&spans, "process test.ping", 5);
    assert_eq!(pings.len(), 2, "{spans:#?}");
    assert_eq!(
        pings.iter().filter(|s| is_error(s)).count(),
        1,
        "{pings:#?}"
    );

    let _ = stop_master.send(());
    guard("the master stops", master_task)
        .await
        .expect("join")
        .expect("master");
}

/// The same drain on every transport, with the library's server: a call
/// in flight finishes, a new request on an open connection is refused with
/// `Error::Overloaded`, a new connection is refused (by the OS on TCP and
/// WebSocket; on ZeroMQ, whose socket stays bound for the open
/// connections, it is dropped as it arrives), and `run` returns once the
/// work is done, long before its 30 s grace period.
///
/// On ZeroMQ the last reply used to be lost about 2 runs in 5 under load:
/// zeromq's DEALER drops what it buffered when the server disconnects. The
/// server now sends the going-away alert after the last reply and waits
/// for the client to close first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_drains_in_flight_calls_and_refuses_new_ones() {
    for listen in [
        "tcp://127.0.0.1:0",
        "ws://127.0.0.1:0/sealrpc",
        "zmq://127.0.0.1:0",
    ] {
        let mut cfg = ChannelConfig::new(Key::generate());
        cfg.reconnect = None;
        cfg.timeout = GUARD;
        let server = Server::bind(
            listen,
            sealrpc::builtin::register(Router::new()),
            cfg.clone(),
        )
        .await
        .expect("bind")
        .with_grace(Duration::from_secs(30));
        let url = server.local_url().expect("url");
        let stopped_accepting = server.stopped_accepting();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let client = Client::connect(&url, cfg.clone()).await.expect("connect");
        let c = client.clone();
        let sleep = sent(async move { c.call("test.sleep", secs(1.0)).await }).await;
        // Its reply means the sleep, sent before it, is running.
        client.call("test.ping", Bytes::new()).await.expect("ping");

        let _ = stop.send(());
        let shutdown = Instant::now();
        guard("the server stops accepting", stopped_accepting).await;
        let err = client
            .call("test.ping", Bytes::new())
            .await
            .expect_err("a new request while draining");
        assert!(matches!(err, Error::Overloaded(_)), "{listen}: {err:?}");
        let mut short = cfg.clone();
        short.timeout = Duration::from_secs(2);
        let late = async {
            let c = Client::connect(&url, short).await?;
            c.call("test.ping", Bytes::new()).await
        };
        let err = guard("a new connection", late)
            .await
            .expect_err("a new connection while draining");
        if listen.starts_with("zmq") {
            assert!(
                matches!(&err, Error::ConnectionClosed | Error::Transport(_)),
                "{listen}: {err:?}"
            );
        } else {
            assert!(
                matches!(&err, Error::Transport(e) if e.to_string().contains("refused")),
                "{listen}: {err:?}"
            );
        }

        let reply = guard("the sleep", sleep)
            .await
            .expect("join")
            .expect("the call in flight finishes");
        assert_eq!(body_json(&reply).expect("json"), Value::Bool(true));
        guard("run returns", running)
            .await
            .expect("join")
            .expect("run");
        let took = shutdown.elapsed();
        assert!(
            took < Duration::from_secs(20),
            "{listen}: the drain ended with the work, not at the 30 s grace: {took:?}"
        );
    }
}
