//! One conformance suite, run against every transport (see
//! tests/support/conformance.rs for what each check proves). Trace-free
//! wire captures per transport are in tests/trace_tcp.rs (TCP).
mod support;

conformance!(tcp, "tcp://127.0.0.1:0");
conformance!(ws, "ws://127.0.0.1:0/sealrpc");
conformance!(zmq, "zmq://127.0.0.1:0");
