//! Publishing one job: resolve the target, open a PRODUCER span, send the
//! sealed job to each minion (or once on the ZeroMQ broadcast topic), and
//! collect returns until all are in or the timeout passes.
use super::registry::Delivery;
use super::Hub;
use crate::channel::Job;
use crate::error::Error;
use crate::job::{JobReport, Target, Undelivered};
use crate::telemetry::Outcome;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Hub {
    pub(crate) async fn publish(
        &self,
        target_expr: &str,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<JobReport, Error> {
        if method.starts_with("sealrpc.") {
            return Err(Error::Publish(format!("{method} is reserved")));
        }
        let target = Target::parse(target_expr)?;
        let minions = self.registry.resolve(&target, self.epoch());
        if minions.is_empty() {
            return Err(Error::Publish(format!(
                "target {target_expr:?} matches no connected minion"
            )));
        }
        let absent = match &target {
            Target::List(ids) => ids
                .iter()
                .filter(|id| minions.binary_search_by(|m| m.0.cmp(id)).is_err())
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let jid = self.next_jid();
        let mut left = self
            .jobs
            .start(&jid, minions.iter().map(|m| m.0.clone()), absent);
        let span = self
            .telemetry
            .as_ref()
            .map(|t| t.producer_span(method, target_expr, &jid, minions.len()));
        let job = Job::new(jid.clone(), method.to_owned(), body, timeout, span.as_ref());
        let failures = self.send(&job, &target, &minions).await;
        if let Some(span) = span {
            span.end(match failures {
                0 => Outcome::Ok,
                _ => Outcome::Failed {
                    kind: "undeliverable",
                    message: "the job could not be sent to every minion",
                },
            });
        }
        let _ = tokio::time::timeout(timeout, left.wait_for(|n| *n == 0)).await;
        Ok(self.jobs.finish(&jid))
    }

    /// Sends `job` to every minion; returns how many could not be sent it
    /// (each is then in the report's `missing` and, with the reason, in
    /// its `undelivered`: never silently lost). A minion whose connection
    /// is backed up is not waited for ([`Error::Busy`]).
    async fn send(
        &self,
        job: &Job,
        target: &Target,
        minions: &[(String, Delivery, crate::channel::PeerLink)],
    ) -> usize {
        let mut failures = 0;
        // `*` on ZeroMQ: one message on the broadcast topic.
        let broadcast = matches!(target, Target::All);
        let mut broadcast_sent: Option<Result<(), String>> = None;
        for (id, delivery, link) in minions {
            let sent = match delivery {
                Delivery::Link => link.push(job, if broadcast { "*" } else { id }),
                Delivery::Topic => match (&self.pub_sender, broadcast) {
                    (None, _) => Err(Error::ConnectionClosed),
                    (Some(pubs), true) => match &broadcast_sent {
                        Some(r) => r.clone(),
                        None => {
                            let r = pubs.send(job, "*").await.map_err(|e| e.to_string());
                            broadcast_sent = Some(r.clone());
                            r
                        }
                    }
                    .map_err(Error::Publish),
                    (Some(pubs), false) => pubs.send(job, id).await,
                },
            };
            if let Err(e) = sent {
                tracing::warn!("job {} not sent to {id}: {e}", job.jid);
                let why = match e {
                    Error::Busy => Undelivered::Busy,
                    Error::ConnectionClosed => Undelivered::ConnectionClosed,
                    e => Undelivered::Failed(e.to_string()),
                };
                self.jobs.undeliverable(&job.jid, id, why);
                failures += 1;
            }
        }
        failures
    }

    /// A new job id: the time in microseconds since the Unix epoch in
    /// decimal (time-ordered, like Salt's), bumped to stay unique.
    fn next_jid(&self) -> String {
        let now = crate::wire::envelope::unix_ms().saturating_mul(1000);
        let mut last = self.last_jid.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last_jid
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next.to_string(),
                Err(actual) => last = actual,
            }
        }
    }
}
