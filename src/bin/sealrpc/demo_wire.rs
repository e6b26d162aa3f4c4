//! The demo's report: the traces as trees, then what the recording relays
//! saw — first as an eavesdropper, then as a peer holding the key.
use opentelemetry_sdk::trace::SpanData;
use sealrpc::keys::{Key, Keyring};
use sealrpc::tap::{contains, split_frames, Tap};
use sealrpc::wire::load::{decode, PublishLoad, RequestLoad};
use sealrpc::wire::{envelope::unix_ms, Kind, Opener, SessionRegistry};
use std::collections::HashSet;
use std::sync::Arc;

pub fn report(spans: &[SpanData], taps: &[&Tap], key: &Key) {
    // Minion registrations are traces of their own; shown only as a count.
    let registration =
        |s: &SpanData| s.name.starts_with("sealrpc.hello") || s.name.starts_with("sealrpc.ready");
    let hidden: HashSet<_> = spans
        .iter()
        .filter(|s| registration(s))
        .map(|s| s.span_context.trace_id())
        .collect();
    let shown: Vec<SpanData> = spans
        .iter()
        .filter(|s| !hidden.contains(&s.span_context.trace_id()))
        .cloned()
        .collect();
    let traces: HashSet<_> = shown.iter().map(|s| s.span_context.trace_id()).collect();
    println!(
        "\n{} spans in {} traces (one per call, one per job; {} minion registration traces not shown):\n",
        shown.len(),
        traces.len(),
        hidden.len()
    );
    print!("{}", sealrpc::telemetry::memory::render_trees(&shown));
    let (mut wire, mut frames) = (Vec::new(), 0);
    for tap in taps {
        let (up, down) = (tap.to_server(), tap.to_client());
        frames += split_frames(&up).len() + split_frames(&down).len();
        wire.extend_from_slice(&up);
        wire.extend_from_slice(&down);
    }
    let leaked = spans
        .iter()
        .filter(|s| {
            let id = s.span_context.trace_id();
            contains(&wire, &id.to_bytes()) || contains(&wire, id.to_string().as_bytes())
        })
        .count();
    println!(
        "\nOn the wire (what an eavesdropper sees): {} bytes in {frames} frames",
        wire.len()
    );
    println!("  spans whose trace id appears (hex or raw): {leaked}");
    let seen = if contains(&wire, b"traceparent") {
        "YES"
    } else {
        "no"
    };
    println!("  the string \"traceparent\" appears: {seen}");
    let (mut requests, mut traced, mut jobs, mut traced_jobs) = (0, 0, 0, 0);
    for tap in taps {
        let keyring = Arc::new(Keyring::single(key.clone()));
        let registry = Arc::new(SessionRegistry::new(60_000, 16));
        let mut up = Opener::new(
            keyring.clone(),
            registry.clone(),
            Kind::Request,
            60_000,
            usize::MAX,
        );
        let mut binding = None;
        for mut frame in split_frames(&tap.to_server()) {
            if let Ok(o) = up.open(&mut frame, unix_ms()) {
                binding.get_or_insert(o.header.salt);
                requests += 1;
                if let Ok(load) = decode::<RequestLoad>(&frame[o.load]) {
                    traced += usize::from(load.trace.0.iter().any(|(k, _)| *k == "traceparent"));
                }
            }
        }
        // Replies and publishes are bound to the connection's first request.
        let mut down = Opener::new(keyring, registry, Kind::Publish, 60_000, usize::MAX);
        down.also_accept(Kind::Reply);
        if let Some(b) = binding {
            down.bind(b);
        }
        for mut frame in split_frames(&tap.to_client()) {
            match down.open(&mut frame, unix_ms()) {
                Ok(o) if o.header.kind == Kind::Publish => {
                    jobs += 1;
                    if let Ok(load) = decode::<PublishLoad>(&frame[o.load]) {
                        traced_jobs +=
                            usize::from(load.trace.0.iter().any(|(k, _)| *k == "traceparent"));
                    }
                }
                _ => {}
            }
        }
    }
    println!("With the key (an authenticated peer): {requests} requests opened, {traced} carry a traceparent;");
    println!("  {jobs} published jobs opened, {traced_jobs} carry a traceparent");
}
