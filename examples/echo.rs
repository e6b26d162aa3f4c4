//! A master and a client written against the library API (not the CLI):
//! register a method, serve it, call it with a deadline, with tracing on
//! into the console exporter when `SEALRPC_TRACE=console` is set.
//!
//! Run: `cargo run --example echo`
use bytes::Bytes;
use sealrpc::channel::{ChannelConfig, Client, HandlerError, Router, Server};
use sealrpc::keys::Key;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Both ends share one key (in production: `sealrpc keygen` + Key::load).
    let key = Key::generate();
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    let mut cfg = ChannelConfig::new(key);
    #[cfg(feature = "otel")]
    if std::env::var("SEALRPC_TRACE").as_deref() == Ok("console") {
        use sealrpc::telemetry::config::{resolve, ExporterKind, Role, TracingSettings};
        let cli = TracingSettings {
            exporter: Some(ExporterKind::Console),
            ..Default::default()
        };
        let none = TracingSettings::default();
        if let Some(tc) = resolve(Role::Master, &none, &none, &cli)? {
            cfg = cfg.with_telemetry(Some(sealrpc::telemetry::Telemetry::init(&tc)?));
        }
    }

    let router = Router::new().route("greet", |req| async move {
        let name: String = req.decode()?;
        if name.is_empty() {
            return Err(HandlerError::new("a name is required"));
        }
        rmp_serde::to_vec(&format!("hello, {name}"))
            .map(Bytes::from)
            .map_err(|e| HandlerError::new(e.to_string()))
    });
    let server = Server::bind("tcp://127.0.0.1:0", router, cfg.clone()).await?;
    let url = format!("tcp://{}", server.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let client = Client::connect(&url, cfg.clone()).await?;
    let greeting: String = client.call_value("greet", "sealrpc").await?;
    println!("{greeting}");
    match client.call_value::<_, String>("greet", "").await {
        Err(e) => println!("as expected: {e}"),
        Ok(v) => println!("unexpected: {v}"),
    }
    let raw = rmp_serde::to_vec("with a deadline")?;
    let reply = client
        .call_with_timeout("greet", raw.into(), Duration::from_millis(500))
        .await?;
    println!("{}", rmp_serde::from_slice::<String>(&reply)?);

    drop(client);
    let _ = stop.send(());
    serving.await??;
    if let Some(t) = &cfg.telemetry {
        t.shutdown().await;
    }
    Ok(())
}
