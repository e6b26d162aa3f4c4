//! Looking spans up in what an in-memory collector received.
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;

/// The value of attribute `key`, as text.
pub fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Every span named `name` of kind `kind`.
pub fn of<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .collect()
}
