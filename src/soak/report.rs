//! The soak's accounting and its printed report.
use serde::Serialize;
use std::collections::BTreeMap;

/// Every request's outcome, counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RequestCounts {
    pub sent: u64,
    pub succeeded: u64,
    /// Failed requests by error kind (`timeout`, `transport`, …).
    pub failed: BTreeMap<String, u64>,
    /// Attempts sent again after a request's first (cuts, lost frames).
    pub retries: u64,
    /// Requests whose handler ran (at least once).
    pub ran: u64,
    /// Requests whose handler ran more than once (must be 0).
    pub duplicated: u64,
}

impl RequestCounts {
    pub(crate) fn record(&mut self, outcome: Result<(), &'static str>) {
        match outcome {
            Ok(()) => self.succeeded += 1,
            Err(kind) => *self.failed.entry(kind.to_owned()).or_default() += 1,
        }
    }

    pub(crate) fn merge(&mut self, o: RequestCounts) {
        self.sent += o.sent;
        self.succeeded += o.succeeded;
        self.retries += o.retries;
        for (k, v) in o.failed {
            *self.failed.entry(k).or_default() += v;
        }
    }

    /// Requests with no outcome at all (must be 0).
    pub fn lost(&self) -> u64 {
        let failed: u64 = self.failed.values().sum();
        self.sent.saturating_sub(self.succeeded + failed)
    }
}

/// Published jobs and what became of each targeted minion.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobCounts {
    pub published: u64,
    /// Publishes refused outright (no minion connected at that moment).
    pub refused: u64,
    /// Targeted minions that returned a result …
    pub returned: u64,
    /// … that returned an error …
    pub failed: u64,
    /// … or that are listed as missing (cut off, late).
    pub missing: u64,
    /// (minion, job) pairs not targeted: the minion was reconnecting when
    /// the job went out (`*` targets the minions connected at that moment).
    pub untargeted: u64,
    /// Job runs on minions, in all.
    pub ran: u64,
    /// (minion, job) pairs run more than once (must be 0).
    pub duplicated: u64,
}

/// The soak's result.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    pub transports: Vec<String>,
    pub minions: usize,
    pub fault_rate: f64,
    pub tries: u32,
    pub elapsed_s: f64,
    pub requests: RequestCounts,
    pub jobs: JobCounts,
    /// Connections the relays cut, frames they lost, frames they forwarded.
    pub cuts: u64,
    pub drops: u64,
    pub frames: u64,
    /// This process's peak resident set size (`VmHWM`), in KiB.
    pub peak_rss_kib: Option<u64>,
}

impl SoakReport {
    /// No request lost, none run twice, no job run twice.
    pub fn passed(&self) -> bool {
        self.requests.lost() == 0 && self.requests.duplicated == 0 && self.jobs.duplicated == 0
    }

    /// The report as printed by `sealrpc soak`.
    pub fn render(&self) -> String {
        let r = &self.requests;
        let j = &self.jobs;
        let failed: Vec<String> = r.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let failed = if failed.is_empty() {
            "0".to_owned()
        } else {
            failed.join(", ")
        };
        let rate = r.sent as f64 / self.elapsed_s.max(1e-9);
        let rss = self.peak_rss_kib.map_or("unknown".to_owned(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        });
        format!(
            "soak over {} ({} minions), fault rate {} per frame, {} tries per request, {:.1} s\n\
             faults injected: {} connections cut, {} frames lost ({} frames relayed)\n\
             requests: sent {}, succeeded {}, failed {}, lost {}, duplicated {} \
             (handlers run for {}; {} retries sent; {:.0} req/s)\n\
             jobs: published {} (refused {}), minion returns {}, failed {}, missing {}, \
             not targeted {}, runs {}, duplicated {}\n\
             peak memory (VmHWM): {}\n\
             result: {}\n",
            self.transports.join(", "),
            self.minions,
            self.fault_rate,
            self.tries,
            self.elapsed_s,
            self.cuts,
            self.drops,
            self.frames,
            r.sent,
            r.succeeded,
            failed,
            r.lost(),
            r.duplicated,
            r.ran,
            r.retries,
            rate,
            j.published,
            j.refused,
            j.returned,
            j.failed,
            j.missing,
            j.untargeted,
            j.ran,
            j.duplicated,
            rss,
            if self.passed() {
                "PASS (lost 0, duplicated 0)"
            } else {
                "FAIL"
            },
        )
    }
}

/// This process's peak RSS in KiB, where `/proc` has it.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    crate::bench::minions::master::parse_vm_hwm(&status)
}
