//! The built-in `test.*` methods every master serves (as Salt's test module):
//! bodies are MessagePack arrays of arguments.
use crate::channel::{HandlerError, Request, Router};
use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;

/// Longest `test.sleep` accepted, in seconds.
pub const MAX_SLEEP_SECS: f64 = 3600.0;

fn encode(v: &Value) -> Result<Bytes, HandlerError> {
    rmp_serde::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| HandlerError::new(format!("cannot encode result: {e}")))
}

fn args(req: &Request) -> Result<Vec<Value>, HandlerError> {
    if req.body.is_empty() {
        return Ok(Vec::new());
    }
    req.decode::<Vec<Value>>()
}

/// Adds `test.ping`, `test.echo`, `test.sleep` and `test.fail` to `router`.
pub fn register(router: Router) -> Router {
    router
        .route("test.ping", |_req| async { encode(&Value::Bool(true)) })
        .route("test.echo", |req| async move {
            let mut a = args(&req)?;
            match a.len() {
                1 => encode(&a.remove(0)),
                _ => encode(&Value::Array(a)),
            }
        })
        .route("test.sleep", |req| async move {
            let a = args(&req)?;
            let secs = a.first().and_then(Value::as_f64).unwrap_or(1.0);
            if !(0.0..=MAX_SLEEP_SECS).contains(&secs) {
                return Err(HandlerError::new(format!(
                    "test.sleep takes 0 to {MAX_SLEEP_SECS} seconds"
                )));
            }
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            encode(&Value::Bool(true))
        })
        .route("test.fail", |_req| async {
            Err(HandlerError::new("test.fail: failing as asked"))
        })
}

/// Encodes CLI-style arguments (JSON where they parse, else strings) as a body.
pub fn args_body<S: AsRef<str>>(args: &[S]) -> Result<Bytes, crate::Error> {
    let values: Vec<Value> = args
        .iter()
        .map(|a| {
            serde_json::from_str(a.as_ref())
                .unwrap_or_else(|_| Value::String(a.as_ref().to_owned()))
        })
        .collect();
    rmp_serde::to_vec(&values)
        .map(Bytes::from)
        .map_err(|e| crate::Error::Body(e.to_string()))
}

/// Decodes a reply body into JSON for printing.
pub fn body_json(body: &[u8]) -> Result<Value, crate::Error> {
    rmp_serde::from_slice(body).map_err(|e| crate::Error::Body(e.to_string()))
}
