//! A real network hop for tests: a second network namespace joined to the
//! test's by a veth pair, with packet loss (and delay where the kernel has
//! `tc netem`), and a blackout switch. A tokio runtime whose threads live in
//! that namespace runs the server side; the test's own runtime is the other
//! end. Needs root, `ip`, and `tc` with netem or `nft` (nftables).
//!
//! Tests run this only with `SEALRPC_NETNS=1` (`.ci/run` sets it); without
//! it they print why and return (see README, Reliability).
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether netns tests are asked for; `None` (with a note) when not.
pub fn wanted(test: &str) -> Option<()> {
    if std::env::var("SEALRPC_NETNS").as_deref() == Ok("1") {
        return Some(());
    }
    eprintln!("{test}: not run: set SEALRPC_NETNS=1 (needs root, ip, tc or nft)");
    None
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespace, its veth pair and addresses; removed on drop.
/// The rate of the token-bucket bottleneck where there is no netem: a
/// 150-byte packet takes 4.7 ms to pass it, a 1,400-byte one 44 ms, each
/// way, and packets queue behind each other (calls take ~80 ms at p50
/// instead of ~5).
pub const BOTTLENECK: &str = "256kbit";

pub struct NetNs {
    name: String,
    host_if: String,
    ns_if: String,
    /// The test side's address.
    pub host_ip: String,
    /// The namespace side's address (bind servers here).
    pub ns_ip: String,
    /// How the link is impaired (for the test's output).
    pub impairment: String,
    table: String,
}

impl NetNs {
    pub fn create() -> Result<NetNs, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let subnet = format!("10.{}.{}", 100 + pid % 100, n % 250);
        let ns = NetNs {
            name: format!("sealrpc{tag}"),
            host_if: format!("sr{tag}a"),
            ns_if: format!("sr{tag}b"),
            host_ip: format!("{subnet}.1"),
            ns_ip: format!("{subnet}.2"),
            impairment: "none".to_owned(),
            table: format!("sealrpc{tag}"),
        };
        run(&["ip", "netns", "add", &ns.name])?;
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ])?;
        run(&["ip", "link", "set", &ns.ns_if, "netns", &ns.name])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            &ns.host_if,
        ])?;
        run(&["ip", "link", "set", &ns.host_if, "up"])?;
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.ns_ip),
            "dev",
            &ns.ns_if,
        ])?;
        ns.exec(&["ip", "link", "set", &ns.ns_if, "up"])?;
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs an nft script on one side (`ns` true: inside the namespace).
    fn nft(&self, ns: bool, script: &str) -> Result<String, String> {
        if ns {
            self.exec(&["nft", script])
        } else {
            run(&["nft", script])
        }
    }

    /// Drops `permille`/1000 of packets arriving on each end, and delays
    /// each direction by `delay_ms` where `tc netem` exists. A kernel
    /// without netem (this VM's) gets the loss from nftables and the delay
    /// from a bottleneck instead: a token bucket (`tc tbf`, built into more
    /// kernels) at [`BOTTLENECK`] on each end, so every packet waits for its
    /// serialization and queues behind the ones before it.
    pub fn impair(&mut self, permille: u32, delay_ms: u32) -> Result<(), String> {
        let loss = format!("{}.{}%", permille / 10, permille % 10);
        let delay = format!("{delay_ms}ms");
        let netem = |dev: &str| {
            vec![
                "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", &delay, "loss", &loss,
            ]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        };
        let host = netem(&self.host_if);
        if run(&host.iter().map(String::as_str).collect::<Vec<_>>()).is_ok() {
            let ns = netem(&self.ns_if);
            self.exec(&ns.iter().map(String::as_str).collect::<Vec<_>>())?;
            self.impairment = format!("tc netem: delay {delay}, loss {loss} each way");
            return Ok(());
        }
        for (ns, dev) in [(false, self.host_if.clone()), (true, self.ns_if.clone())] {
            let script = format!(
                "add table inet {t}\n\
                 add chain inet {t} input {{ type filter hook input priority 0; }}\n\
                 add rule inet {t} input iifname \"{dev}\" numgen random mod 1000 < {permille} counter drop\n",
                t = self.table
            );
            self.nft_script(ns, &script)?;
        }
        let tbf = [
            "root", "tbf", "rate", BOTTLENECK, "burst", "1600", "latency", "1s",
        ];
        let shaped = run(&[&["tc", "qdisc", "add", "dev", &self.host_if][..], &tbf].concat())
            .and_then(|_| {
                self.exec(&[&["tc", "qdisc", "add", "dev", &self.ns_if][..], &tbf].concat())
            });
        self.impairment = match shaped {
            Ok(_) => format!(
                "nftables: loss {loss} each way; tc tbf: a {BOTTLENECK} bottleneck each way \
                 (no tc netem in this kernel)"
            ),
            Err(e) => format!(
                "nftables: loss {loss} each way (no tc netem in this kernel, and no tbf: {e})"
            ),
        };
        Ok(())
    }

    fn nft_script(&self, ns: bool, script: &str) -> Result<(), String> {
        let path = std::env::temp_dir().join(format!("{}-{}.nft", self.table, ns));
        std::fs::write(&path, script).map_err(|e| e.to_string())?;
        let p = path.to_string_lossy().into_owned();
        let r = if ns {
            self.exec(&["nft", "-f", &p])
        } else {
            run(&["nft", "-f", &p])
        };
        let _ = std::fs::remove_file(&path);
        r.map(|_| ())
    }

    /// Times the bottleneck (tbf) held a packet back, both ends (0 without).
    pub fn held_back(&self) -> u64 {
        let count = |out: Result<String, String>| {
            out.ok()
                .and_then(|s| {
                    let rest = &s[s.find("overlimits ")? + "overlimits ".len()..];
                    rest.split_whitespace().next()?.parse::<u64>().ok()
                })
                .unwrap_or(0)
        };
        count(run(&["tc", "-s", "qdisc", "show", "dev", &self.host_if]))
            + count(self.exec(&["tc", "-s", "qdisc", "show", "dev", &self.ns_if]))
    }

    /// Packets the nftables loss rules dropped so far (0 with netem).
    pub fn dropped(&self) -> u64 {
        [false, true]
            .iter()
            .filter_map(|&ns| {
                self.nft(ns, &format!("list table inet {}", self.table))
                    .ok()
            })
            .flat_map(|out| {
                out.split("packets ")
                    .skip(1)
                    .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Drops every packet both ways (`on`), or stops doing so.
    pub fn blackout(&self, on: bool) -> Result<(), String> {
        let t = format!("{}_blackout", self.table);
        for (ns, dev) in [(false, &self.host_if), (true, &self.ns_if)] {
            if on {
                self.nft_script(
                    ns,
                    &format!(
                        "add table inet {t}\n\
                         add chain inet {t} input {{ type filter hook input priority -10; }}\n\
                         add rule inet {t} input iifname \"{dev}\" drop\n"
                    ),
                )?;
            } else {
                self.nft(ns, &format!("delete table inet {t}"))?;
            }
        }
        Ok(())
    }

    /// A multi-thread runtime whose threads live in the namespace: sockets
    /// it creates (listeners, connections) belong to the namespace.
    pub fn runtime(&self) -> Result<NsRuntime, String> {
        let path = format!("/var/run/netns/{}", self.name);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let built = (|| {
                let fd = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                rustix::thread::move_into_link_name_space(
                    fd.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| format!("setns {path}: {e}"))?;
                // Worker threads are started from this thread: they inherit
                // its network namespace.
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            })();
            let _ = tx.send(built);
        });
        let rt = rx.recv().map_err(|e| e.to_string())??;
        Ok(NsRuntime(Some(rt)))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and so the pair.
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["nft", &format!("delete table inet {}", self.table)]);
        let _ = run(&["nft", &format!("delete table inet {}_blackout", self.table)]);
    }
}

/// A runtime in the namespace; shut down in the background when dropped
/// (it is dropped inside the test's own runtime, where blocking is not
/// allowed).
pub struct NsRuntime(Option<tokio::runtime::Runtime>);

impl NsRuntime {
    pub fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime lives until drop"),
        }
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
