//! Running the real `sealrpc` binary: a clean environment, key files, and
//! long-running processes (master, minion) that are waited on by what they
//! print, never by sleeping, and killed if a test fails.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_sealrpc");

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sealrpc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// The binary with `args`, without inherited OTEL_* or TRACEPARENT.
pub fn sealrpc(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k == "TRACEPARENT" || k == "TRACESTATE" {
            c.env_remove(k);
        }
    }
    c
}

pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let out = sealrpc(&["keygen", "--out", key.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    key
}

/// A long-running `sealrpc` process.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Spawns `sealrpc args` and returns once its stderr has shown `n`
    /// lines starting with `prefix`, with the rest of each such line.
    pub fn start(args: &[&str], prefix: &str, n: usize) -> (Proc, Vec<String>) {
        let mut child = sealrpc(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sealrpc");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let proc = Proc { child };
        let mut found = Vec::new();
        while found.len() < n {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{args:?} exited before printing {prefix:?}"))
                .expect("read");
            if let Some(rest) = line.strip_prefix(prefix) {
                found.push(rest.to_owned());
            }
        }
        // Keep draining stderr so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (proc, found)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM")
    }

    /// Sends `sig` (e.g. "-INT", as Ctrl-C does), then the exit status.
    pub fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    /// A failed assertion must not leave a process running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sealrpc master`.
pub struct Master {
    pub proc: Proc,
    /// The first listener's URL.
    pub url: String,
    /// Every listener's URL, in order.
    pub urls: Vec<String>,
}

impl Master {
    /// A master on an ephemeral TCP port.
    pub fn start(key: &Path, extra: &[&str]) -> Master {
        Master::start_on(key, &["tcp://127.0.0.1:0"], extra)
    }

    /// A master listening on every URL of `listen` (port 0: free ports).
    pub fn start_on(key: &Path, listen: &[&str], extra: &[&str]) -> Master {
        let mut args = vec!["master", "--key", key.to_str().expect("utf8")];
        for l in listen {
            args.extend(["--listen", l]);
        }
        args.extend_from_slice(extra);
        let (proc, urls) = Proc::start(&args, "sealrpc master listening on ", listen.len());
        Master {
            proc,
            url: urls[0].clone(),
            urls,
        }
    }

    /// The listener URL with this scheme.
    pub fn url_of(&self, scheme: &str) -> String {
        self.urls
            .iter()
            .find(|u| u.starts_with(&format!("{scheme}://")))
            .cloned()
            .expect("listener")
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.proc.terminate()
    }

    pub fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        self.proc.signal(sig)
    }
}

/// A `sealrpc minion`, started once it says it is registered.
pub fn minion(key: &Path, master: &str, id: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "minion",
        "--master",
        master,
        "--id",
        id,
        "--key",
        key.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    Proc::start(&args, &format!("sealrpc minion {id} ready"), 1).0
}

/// Every span in a file written by the `file` exporter (OTLP JSON lines).
pub fn spans_in(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut spans = Vec::new();
    for line in text.lines() {
        let req: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        for rs in req["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                spans.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    spans
}
