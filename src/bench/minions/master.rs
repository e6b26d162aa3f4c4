//! The master under test, as a child process (`EXE master --listen URL
//! --pki-dir DIR`), so that its peak RSS and CPU time are its own. The
//! child is stopped on every exit path: [`MasterChild::stop`] (SIGTERM,
//! then SIGKILL after a grace period), `Drop` (SIGKILL and reap), and, on
//! Linux, the kernel when this process dies (parent-death signal).
use super::MinionBenchError;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the master may take to bind and print its URL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to stop after SIGTERM (its own grace is 5 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct MasterChild {
    child: Child,
    /// The URL the master printed it listens on.
    pub(crate) url: String,
    reaped: bool,
}

fn setup(e: impl std::fmt::Display) -> MinionBenchError {
    MinionBenchError::Setup(format!("master process: {e}"))
}

impl MasterChild {
    /// Starts `exe master --listen LISTEN --pki-dir PKI_DIR` and waits for
    /// it to print the URL it listens on. Its later stderr lines are
    /// forwarded to ours, prefixed `master:`.
    pub(crate) async fn spawn(
        exe: &Path,
        listen: &str,
        pki_dir: &Path,
    ) -> Result<MasterChild, MinionBenchError> {
        let mut cmd = Command::new(exe);
        cmd.args(["--log", "warn", "master", "--listen", listen, "--pki-dir"])
            .arg(pki_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        exit_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| setup(format!("{}: {e}", exe.display())))?;
        let stderr = child.stderr.take().ok_or_else(|| setup("no stderr pipe"))?;
        let mut master = MasterChild {
            child,
            url: String::new(),
            reaped: false,
        };
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || forward(BufReader::new(stderr), tx));
        master.url = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => return Err(setup("it exited before listening (see its stderr above)")),
            Err(_) => return Err(setup(format!("not listening after {START_TIMEOUT:?}"))),
        };
        Ok(master)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn proc_file(&self, name: &str) -> Result<String, MinionBenchError> {
        let path = format!("/proc/{}/{name}", self.pid());
        std::fs::read_to_string(&path).map_err(|e| setup(format!("{path}: {e}")))
    }

    /// The master's peak resident set size so far, in KiB (`VmHWM`).
    pub(crate) fn peak_rss_kib(&self) -> Result<u64, MinionBenchError> {
        let status = self.proc_file("status")?;
        parse_vm_hwm(&status).ok_or_else(|| setup("no VmHWM in /proc/PID/status"))
    }

    /// CPU time the master used so far (user + system, all threads), in
    /// clock ticks (see [`seconds`]).
    pub(crate) fn cpu_ticks(&self) -> Result<u64, MinionBenchError> {
        let stat = self.proc_file("stat")?;
        parse_cpu_ticks(&stat).ok_or_else(|| setup("malformed /proc/PID/stat"))
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    pub(crate) async fn stop(mut self) -> Result<ExitStatus, MinionBenchError> {
        terminate(self.pid());
        let waited = async {
            loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => return Ok(status),
                    Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(e) => return Err(setup(e)),
                }
            }
        };
        let status = match tokio::time::timeout(STOP_TIMEOUT, waited).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self.child.kill();
                self.child.wait().map_err(setup)
            }
        };
        self.reaped = true;
        status
    }
}

impl Drop for MasterChild {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the master's stderr: sends the URL of the first `listening on`
/// line, forwards every other line.
fn forward(stderr: impl BufRead, tx: oneshot::Sender<String>) {
    let mut tx = Some(tx);
    for line in stderr.lines() {
        let Ok(line) = line else { break };
        match line.strip_prefix("sealrpc master listening on ") {
            Some(url) if tx.is_some() => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
            // Its other start and stop lines are expected: not news.
            _ if line.starts_with("sealrpc master ") => {}
            _ => eprintln!("master: {line}"),
        }
    }
}

pub(crate) fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime from `/proc/PID/stat` (fields 14 and 15; the command
/// name, field 2, is in parentheses and may hold spaces).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks as seconds.
pub(crate) fn seconds(ticks: u64) -> f64 {
    #[cfg(unix)]
    let per_second = rustix::param::clock_ticks_per_second();
    #[cfg(not(unix))]
    let per_second = 100;
    ticks as f64 / per_second.max(1) as f64
}

/// Sends SIGTERM to `pid` (elsewhere: nothing; `stop` then kills it).
#[cfg(unix)]
fn terminate(pid: u32) {
    use rustix::process::{kill_process, Pid, Signal};
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::TERM);
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

/// On Linux, the kernel kills the child when the thread that spawned it
/// ends: this process exiting or being killed, even with SIGKILL (the
/// spawning thread is a runtime worker, which lives as long as the
/// runtime). No orphaned master on any exit path.
#[cfg(target_os = "linux")]
fn exit_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; it only
    // makes the prctl system call, which is async-signal-safe, and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn exit_with_parent(_cmd: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let status = "Name:\tsealrpc\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12345));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        let stat = "4242 (sealrpc (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }
}
