//! PRODUCER and CONSUMER spans of published jobs, named and attributed per
//! OpenTelemetry's messaging semantic conventions: `publish {method}` on the
//! master, `process {method}` on each minion.
use super::span::{extracted_parent, SpanHandle, Telemetry};
use super::ConsumerMode;
use crate::context::Extracted;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// Longest target expression recorded on a span.
const MAX_TARGET: usize = 256;

fn common(
    operation_type: &'static str,
    operation: &'static str,
    method: &str,
    jid: &str,
) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "sealrpc"),
        KeyValue::new("messaging.operation.type", operation_type),
        KeyValue::new("messaging.operation.name", operation),
        KeyValue::new("messaging.destination.name", method.to_owned()),
        KeyValue::new("messaging.message.id", jid.to_owned()),
    ]
}

impl Telemetry {
    /// The PRODUCER span of publishing job `jid` to `count` minions; a child
    /// of the current context (the master's SERVER span for the publish
    /// request, or the caller's span in-process).
    pub(crate) fn producer_span(
        &self,
        method: &str,
        target: &str,
        jid: &str,
        count: usize,
    ) -> SpanHandle {
        let target = match target.char_indices().nth(MAX_TARGET) {
            Some((i, _)) => &target[..i],
            None => target,
        };
        let mut attrs = common("send", "publish", method, jid);
        attrs.push(KeyValue::new("messaging.batch.message_count", count as i64));
        attrs.push(KeyValue::new("sealrpc.target", target.to_owned()));
        let builder = self
            .tracer()
            .span_builder(format!("publish {method}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(attrs);
        self.start(builder, Context::current())
    }

    /// The CONSUMER span of job `jid` on minion `minion`. With
    /// [`ConsumerMode::Child`] a child of the PRODUCER span whose context
    /// came in the publish; with [`ConsumerMode::Link`] a new trace that
    /// links to it (for work that may run long after the publish).
    pub(crate) fn consumer_span(
        &self,
        method: &str,
        jid: &str,
        minion: &str,
        remote: &Extracted,
        mode: ConsumerMode,
    ) -> SpanHandle {
        let mut attrs = common("process", "process", method, jid);
        attrs.push(KeyValue::new("messaging.client.id", minion.to_owned()));
        let producer = extracted_parent(remote, &"the master");
        let mut builder = self
            .tracer()
            .span_builder(format!("process {method}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(attrs);
        let parent = match mode {
            ConsumerMode::Child => producer,
            ConsumerMode::Link => {
                let sc = producer.span().span_context().clone();
                if sc.is_valid() {
                    builder = builder.with_links(vec![Link::with_context(sc)]);
                }
                Context::new()
            }
        };
        self.start(builder, parent)
    }
}
