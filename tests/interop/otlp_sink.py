#!/usr/bin/env python3
"""A third-party OTLP collector process for tests/interop/otlp_trace.py.

The receivers are oteltest's (PyPI `oteltest`, pinned in requirements.txt):
`oteltest.sink.GrpcSink` (a grpcio server implementing the OTLP
TraceService) and `oteltest.sink.HttpSink` (an http.server accepting
POST /v1/traces, decoding the body with opentelemetry-proto). This file only
starts them on free ports and hands what they receive to its parent through
their documented callback interface, `oteltest.sink.handler.RequestHandler`.
Nothing here parses OTLP bytes: the sinks give us decoded
`ExportTraceServiceRequest` messages.

The `otelsink` command that oteltest ships does the same but binds the fixed
ports 4317/4318 and prints Python reprs, hence this wrapper.

Protocol with the parent, one JSON object per line on stdout:
  {"event": "ready", "grpc_port": P, "http_port": Q, "versions": {...}}
  {"event": "spans", "protocol": "grpc"|"http", "headers": {...}, "spans": [...]}
  {"event": "sync", "id": N}     in reply to a line "sync N" on stdin; since
                                 stdout is written under one lock, every
                                 request the sinks received before comes first.
The process exits when its stdin closes (so it never outlives its parent)
or on SIGTERM.
"""
import json, logging, signal, socket, sys, threading, time
from importlib.metadata import version

from oteltest.sink import GrpcSink, HttpSink
from oteltest.sink.handler import RequestHandler
from opentelemetry.proto.trace.v1 import trace_pb2

OUT = threading.Lock()


def emit(obj):
    line = json.dumps(obj, sort_keys=True)
    with OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def flatten(request):
    """ExportTraceServiceRequest -> a list of plain span records (ids in hex)."""
    out = []
    for rs in request.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "service": resource.get("service.name"),
                    "resource": resource,
                    "scope": ss.scope.name,
                    "name": s.name,
                    "kind": trace_pb2.Span.SpanKind.Name(s.kind).replace("SPAN_KIND_", ""),
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "status": trace_pb2.Status.StatusCode.Name(s.status.code),
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in s.links],
                })
    return out


class Forward(RequestHandler):
    """oteltest's callback interface: one instance per receiver."""

    def __init__(self, protocol):
        self.protocol = protocol

    def handle_trace(self, request, headers):
        keep = {k.lower(): v for k, v in headers.items()
                if k.lower() in ("content-type", "user-agent", "content-encoding")}
        emit({"event": "spans", "protocol": self.protocol, "headers": keep, "spans": flatten(request)})

    def handle_metrics(self, request, headers):
        emit({"event": "other", "protocol": self.protocol, "what": "metrics"})

    def handle_logs(self, request, headers):
        emit({"event": "other", "protocol": self.protocol, "what": "logs"})


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_grpc(logger):
    # GrpcSink binds 0.0.0.0:PORT in its constructor and does not report the
    # port it got, so pick a free one and retry if someone takes it first.
    last = None
    for _ in range(20):
        port = free_port()
        try:
            sink = GrpcSink(Forward("grpc"), logger, port=port)
        except RuntimeError as e:  # grpcio: "Failed to bind to address"
            last = e
            continue
        sink.start()
        return sink, port
    raise SystemExit("otlp_sink: could not bind a gRPC port: %s" % last)


def start_http(logger):
    # Port 0: HTTPServer binds an ephemeral port in its constructor (on the
    # sink's thread); read it back once the server object exists.
    sink = HttpSink(Forward("http"), logger, port=0)
    sink.start()
    deadline = time.monotonic() + 10
    while sink.httpd is None:
        if not sink.svr_thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("otlp_sink: the HTTP sink did not start")
        time.sleep(0.01)
    return sink, sink.httpd.server_address[1]


def main():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logger = logging.getLogger("otelsink")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    grpc_sink, grpc_port = start_grpc(logger)
    http_sink, http_port = start_http(logger)
    emit({
        "event": "ready",
        "grpc_port": grpc_port,
        "http_port": http_port,
        "versions": {p: version(p) for p in ("oteltest", "grpcio", "protobuf", "opentelemetry-proto")},
    })
    try:
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "sync":
                emit({"event": "sync", "id": int(parts[1])})
    finally:
        grpc_sink.stop()
        http_sink.stop()


if __name__ == "__main__":
    main()
