#!/usr/bin/env python3
"""Interop: a real OTLP collector process receives a sealrpc trace.

The collector is oteltest's OTLP sinks (PyPI `oteltest`, see requirements.txt),
run as a separate process by tests/interop/otlp_sink.py: a grpcio OTLP/gRPC
TraceService and an OTLP/HTTP receiver that decodes protobuf bodies with
opentelemetry-proto. Nobody on this project wrote either receiver.

For each protocol (otlp-grpc, otlp-http) this script starts a sealrpc master
exporting to that receiver, runs one scenario against it, stops every sealrpc
process with SIGTERM (each flushes its spans as it ends and must exit 0), then
polls what the collector received until the expected spans are there
(bounded by --wait), and checks:
  - every non-empty parent_span_id names a span that was received;
  - call: the master listens on tcp://; `sealrpc call test.echo hi` prints
          "hi". Every span of the run has the same trace id and there is
          exactly one root: INTERNAL (the CLI), then CLIENT test.echo (CLI)
          whose parent is the root, then SERVER test.echo (master) whose
          parent is that CLIENT.
  - job:  the master listens on tcp://, ws:// and zmq://; minion m1
          registers on tcp, m2 on ws, m3 on zmq; `sealrpc publish --target '*'
          test.ping` prints {"m1": true, "m2": true, "m3": true}. The job's
          trace is the one whose root is the CLI's INTERNAL
          `sealrpc publish test.ping`:
            INTERNAL sealrpc publish test.ping   [sealrpc-cli]
              CLIENT sealrpc.publish             [sealrpc-cli]
                SERVER sealrpc.publish           [sealrpc-master]
                  PRODUCER publish test.ping     [sealrpc-master]
                    CONSUMER process test.ping   [sealrpc-minion-mN]  one per minion
                      CLIENT sealrpc.return      [sealrpc-minion-mN]
                        SERVER sealrpc.return    [sealrpc-master]
          with exactly one root, every parent within that trace, the
          PRODUCER's messaging.* attributes (system sealrpc, operation.type
          send, message.id the job id, batch.message_count 3) and each
          CONSUMER's (messaging.client.id its minion, the same message.id).
          Every job span is in that trace; the only spans outside it are the
          minions' registrations (sealrpc.hello, and on zmq sealrpc.ready),
          each a trace of its own.

Usage (with the venv that has requirements.txt installed):
  target/ci-venv/bin/python tests/interop/otlp_trace.py [--sealrpc BIN]
      [--scenario call|job|all] [--protocol otlp-grpc|otlp-http|both] [--wait SECONDS]
Every scenario over both protocols, the whole OTLP interop suite, is one command
(after `cargo build --release`; each scenario gets a fresh collector process):
  target/ci-venv/bin/pip install -q -r tests/interop/requirements.txt   # once
  target/ci-venv/bin/python tests/interop/otlp_trace.py --scenario all
.ci/run runs exactly that against target/release/sealrpc (after the Python
wire peer and the pyzmq and websockets peers), installing requirements.txt
into target/ci-venv first if it is missing.
Exits 0 when every run passes; otherwise prints what failed and exits 1.
Every child process is killed on exit, also on failure or a signal.
"""
import argparse, atexit, json, os, re, signal, subprocess, sys, tempfile, threading, time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SINK = os.path.join(HERE, "otlp_sink.py")
# The job scenario's minions and the master listener each one registers on.
MINIONS = (("m1", "tcp"), ("m2", "ws"), ("m3", "zmq"))
JOB_ROOT = "sealrpc publish test.ping"
JOB_PRODUCER = "publish test.ping"
JOB_CONSUMER = "process test.ping"
# Every span name of the job's trace, and those of the minions' registrations
# (each a trace of its own).
JOB_SPANS = (JOB_ROOT, "sealrpc.publish", JOB_PRODUCER, JOB_CONSUMER, "sealrpc.return")
REGISTRATION = ("sealrpc.hello", "sealrpc.ready")
PROTOCOLS = ("otlp-grpc", "otlp-http")
SCENARIOS = ("call", "job")


class Fail(Exception):
    pass


# ---------------------------------------------------------------- processes

CHILDREN = []


def kill_children():
    """SIGTERM whatever still runs, then SIGKILL what has not exited 3 s later."""
    live = [c for c in CHILDREN if c.proc.poll() is None]
    for c in live:
        try:
            c.proc.terminate()
        except OSError:
            pass
    deadline = time.monotonic() + 3
    for c in live:
        try:
            c.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def child_env():
    # The run must start its own trace and use only the flags below: drop an
    # outer TRACEPARENT/TRACESTATE and every OTEL_* setting of this shell.
    return {k: v for k, v in os.environ.items()
            if k not in ("TRACEPARENT", "TRACESTATE") and not k.startswith("OTEL_")}


class Child:
    """A child process whose stdout and stderr are collected line by line."""

    def __init__(self, label, argv, stdin=None):
        self.label = label
        self.argv = argv
        self.cv = threading.Condition()
        self.out, self.err = [], []
        self.proc = subprocess.Popen(
            argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            env=child_env())
        CHILDREN.append(self)
        self.readers = [threading.Thread(target=self._read, args=(f, buf), daemon=True)
                        for f, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    def _read(self, f, buf):
        for line in f:
            with self.cv:
                buf.append(line.rstrip("\n"))
                self.cv.notify_all()
            self.on_line(buf is self.out, line)
        with self.cv:
            self.cv.notify_all()

    def on_line(self, is_stdout, line):
        pass

    def tail(self, n=15):
        with self.cv:
            lines = self.err[-n:]
        return "\n".join("    %s| %s" % (self.label, l) for l in lines) or "    %s| (no stderr)" % self.label

    def wait_stderr(self, pattern, timeout):
        """Waits for a stderr line matching pattern; fails if the process ends first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cv:
            while True:
                for line in self.err[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.err)
                if self.proc.poll() is not None and not any(t.is_alive() for t in self.readers):
                    raise Fail("%s exited (code %s) before printing /%s/:\n%s"
                               % (self.label, self.proc.returncode, pattern, self.tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail("%s printed no /%s/ within %ss:\n%s" % (self.label, pattern, timeout, self.tail()))
                self.cv.wait(min(left, 0.2))

    def finish(self, timeout):
        """Waits for the process to exit; returns its exit code."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail("%s did not exit within %ss:\n%s" % (self.label, timeout, self.tail()))
        for t in self.readers:
            t.join(5)
        return self.proc.returncode

    def stop(self, timeout):
        """SIGTERM, then waits for the exit; fails unless the exit code is 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.finish(timeout)
        if rc != 0:
            raise Fail("%s exited %s after SIGTERM (expected 0):\n%s" % (self.label, rc, self.tail()))


# ---------------------------------------------------------------- collector

class Sink(Child):
    """The oteltest collector process; collects the span batches it reports."""

    def __init__(self, python):
        self.batches = []  # (protocol, headers, [span])
        self.syncs = set()
        self.ready = None
        super().__init__("collector", [python, SINK], stdin=subprocess.PIPE)

    def on_line(self, is_stdout, line):
        if not is_stdout:
            return
        try:
            ev = json.loads(line)
        except ValueError:
            return
        with self.cv:
            if ev.get("event") == "ready":
                self.ready = ev
            elif ev.get("event") == "spans":
                self.batches.append((ev["protocol"], ev["headers"], ev["spans"]))
            elif ev.get("event") == "sync":
                self.syncs.add(ev["id"])
            self.cv.notify_all()

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.ready is None:
                left = deadline - time.monotonic()
                if not self.alive() or left <= 0:
                    raise Fail("the collector did not start (is oteltest installed in %s? "
                               "pip install -r tests/interop/requirements.txt):\n%s"
                               % (self.argv[0], self.tail()))
                self.cv.wait(min(left, 0.2))
        return self.ready

    def received(self, proto):
        with self.cv:
            return [s for p, _, spans in self.batches if p == proto for s in spans]

    def headers(self, proto):
        with self.cv:
            return [h for p, h, _ in self.batches if p == proto]

    def poll_until(self, proto, done, timeout):
        """Re-checks done(spans received over proto) on every batch, bounded by timeout."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                spans = [s for p, _, b in self.batches if p == proto for s in b]
                if done(spans):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    return False
                self.cv.wait(min(left, 0.5))

    def close(self, timeout=10):
        """Ends the collector: it exits when its stdin closes."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def barrier(self, timeout=10):
        """Every request the sinks handled before this call has been read."""
        n = len(self.syncs) + 1
        self.proc.stdin.write("sync %d\n" % n)
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        with self.cv:
            while n not in self.syncs:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    raise Fail("the collector did not answer a sync:\n%s" % self.tail())
                self.cv.wait(min(left, 0.2))


# ---------------------------------------------------------------- checks

def desc(s):
    return "%s %r [%s] %s" % (s["kind"], s["name"], s["service"], s["span_id"])


def one(spans, what, pred):
    found = [s for s in spans if pred(s)]
    if len(found) != 1:
        raise Fail("expected exactly one %s, found %d%s" % (
            what, len(found), "".join("\n    " + desc(s) for s in found)))
    return found[0]


def problems(scenario, spans):
    """Everything wrong with the received spans of one run (empty = intact)."""
    if not spans:
        return ["no spans received"]
    errs = []
    traces = sorted({s["trace_id"] for s in spans})
    if any(len(t) != 32 or set(t) == {"0"} for t in traces):
        errs.append("invalid trace id among %s" % traces)
    by_id = {}
    for s in spans:
        if s["span_id"] in by_id:
            errs.append("span id %s received twice" % s["span_id"])
        by_id[s["span_id"]] = s
    # The checks append what they find to errs and raise Fail where going on
    # makes no sense; both end up in the list.
    try:
        if scenario == "call":
            check_call(spans, traces, by_id, errs)
        else:
            check_job(spans, by_id, errs)
    except Fail as e:
        errs.append(str(e))
    return errs


def parents_and_root(spans, by_id, what, errs):
    """Every parent of spans resolves to a span in by_id; exactly one root."""
    errs += ["%s: parent %s was not received" % (desc(s), s["parent_span_id"])
             for s in spans if s["parent_span_id"] and s["parent_span_id"] not in by_id]
    roots = [s for s in spans if not s["parent_span_id"]]
    if len(roots) != 1:
        raise Fail("expected one root span in %s, found %d%s"
                   % (what, len(roots), "".join("\n    " + desc(s) for s in roots)))
    return roots[0]


def check_call(spans, traces, by_id, errs):
    if len(traces) != 1:
        per = defaultdict(list)
        for s in spans:
            per[s["trace_id"]].append(desc(s))
        errs.append("%d trace ids, expected one:%s" % (len(traces), "".join(
            "\n    %s: %s" % (t, ", ".join(per[t])) for t in traces)))
    root = parents_and_root(spans, by_id, "the run", errs)
    if root["kind"] != "INTERNAL" or root["service"] != "sealrpc-cli":
        raise Fail("the root is %s, expected an INTERNAL span of sealrpc-cli" % desc(root))
    client = one(spans, "CLIENT test.echo", lambda s: s["kind"] == "CLIENT" and s["name"] == "test.echo")
    server = one(spans, "SERVER test.echo", lambda s: s["kind"] == "SERVER" and s["name"] == "test.echo")
    if client["service"] != "sealrpc-cli" or client["parent_span_id"] != root["span_id"]:
        raise Fail("%s should be the CLI's, child of the root %s" % (desc(client), root["span_id"]))
    if server["service"] != "sealrpc-master" or server["parent_span_id"] != client["span_id"]:
        raise Fail("%s should be the master's, child of the CLIENT span %s"
                   % (desc(server), client["span_id"]))


def expect(span, what, kind=None, service=None, parent=None, attributes=()):
    """Fails unless span has that kind, service, parent span and attributes."""
    wrong = []
    if kind is not None and span["kind"] != kind:
        wrong.append("kind %s, expected %s" % (span["kind"], kind))
    if service is not None and span["service"] != service:
        wrong.append("service %r, expected %r" % (span["service"], service))
    if parent is not None and span["parent_span_id"] != parent["span_id"]:
        wrong.append("parent %s, expected %s" % (span["parent_span_id"] or "none", desc(parent)))
    for k, v in attributes:
        got = span["attributes"].get(k)
        if got != v:
            wrong.append("attribute %s=%r, expected %r" % (k, got, v))
    if wrong:
        raise Fail("%s (%s): %s" % (what, desc(span), "; ".join(wrong)))


def check_job(spans, by_id, errs):
    # The job's trace is the one whose root is the CLI's INTERNAL span; the
    # minions' registrations (sealrpc.hello, sealrpc.ready) are traces of
    # their own, and nothing else may be outside the job's trace.
    root = one(spans, "INTERNAL %r root" % JOB_ROOT,
               lambda s: s["kind"] == "INTERNAL" and s["name"] == JOB_ROOT)
    trace = root["trace_id"]
    job = [s for s in spans if s["trace_id"] == trace]
    errs += ["%s is a job span outside the job's trace %s" % (desc(s), trace)
             for s in spans if s["trace_id"] != trace and s["name"] in JOB_SPANS]
    errs += ["%s is outside the job's trace %s, and not a registration (%s)"
             % (desc(s), trace, "/".join(REGISTRATION)) for s in spans
             if s["trace_id"] != trace and s["name"] not in JOB_SPANS and s["name"] not in REGISTRATION]
    top = parents_and_root(job, {s["span_id"]: s for s in job}, "the job's trace %s" % trace, errs)
    if top is not root:
        raise Fail("the job's trace has root %s, expected %s" % (desc(top), desc(root)))
    expect(root, "the root", service="sealrpc-cli")
    pc = one(job, "CLIENT sealrpc.publish", lambda s: s["kind"] == "CLIENT" and s["name"] == "sealrpc.publish")
    expect(pc, "CLIENT sealrpc.publish", service="sealrpc-cli", parent=root)
    ps = one(job, "SERVER sealrpc.publish", lambda s: s["kind"] == "SERVER" and s["name"] == "sealrpc.publish")
    expect(ps, "SERVER sealrpc.publish", service="sealrpc-master", parent=pc)
    prod = one(job, "PRODUCER %r" % JOB_PRODUCER, lambda s: s["kind"] == "PRODUCER")
    jid = prod["attributes"].get("messaging.message.id")
    if not isinstance(jid, str) or not jid:
        raise Fail("%s: no messaging.message.id (the job id)" % desc(prod))
    expect(prod, "the PRODUCER", service="sealrpc-master", parent=ps, attributes=(
        ("messaging.system", "sealrpc"), ("messaging.operation.type", "send"),
        ("messaging.batch.message_count", len(MINIONS))))
    if prod["name"] != JOB_PRODUCER:
        raise Fail("%s should be named %r" % (desc(prod), JOB_PRODUCER))
    consumers = [s for s in job if s["kind"] == "CONSUMER"]
    ids = sorted(str(s["attributes"].get("messaging.client.id")) for s in consumers)
    if ids != sorted(m for m, _ in MINIONS):
        raise Fail("CONSUMER spans for minions %s, expected one each for %s%s" % (
            ids, sorted(m for m, _ in MINIONS), "".join("\n    " + desc(s) for s in consumers)))
    for m, _ in MINIONS:
        svc = "sealrpc-minion-" + m
        cons = one(job, "CONSUMER of minion " + m,
                   lambda s: s["kind"] == "CONSUMER" and s["attributes"].get("messaging.client.id") == m)
        expect(cons, "CONSUMER of " + m, service=svc, parent=prod, attributes=(
            ("messaging.system", "sealrpc"), ("messaging.operation.type", "process"),
            ("messaging.message.id", jid)))
        if cons["name"] != JOB_CONSUMER:
            raise Fail("%s should be named %r" % (desc(cons), JOB_CONSUMER))
        rc = one(job, "CLIENT sealrpc.return child of %s's CONSUMER" % m,
                 lambda s: s["kind"] == "CLIENT" and s["name"] == "sealrpc.return"
                 and s["parent_span_id"] == cons["span_id"])
        expect(rc, "CLIENT sealrpc.return of " + m, service=svc)
        rs = one(job, "SERVER sealrpc.return child of %s's CLIENT sealrpc.return" % m,
                 lambda s: s["kind"] == "SERVER" and s["name"] == "sealrpc.return"
                 and s["parent_span_id"] == rc["span_id"])
        expect(rs, "SERVER sealrpc.return of " + m, service="sealrpc-master")
    # Every CLIENT/SERVER sealrpc.return of the run is one of those above.
    for kind in ("CLIENT", "SERVER"):
        n = sum(1 for s in spans if s["kind"] == kind and s["name"] == "sealrpc.return")
        if n != len(MINIONS):
            raise Fail("%d %s sealrpc.return spans, expected %d (one per minion)" % (n, kind, len(MINIONS)))


def tree(spans):
    by_parent = defaultdict(list)
    ids = {s["span_id"] for s in spans}
    for s in spans:
        by_parent[s["parent_span_id"] if s["parent_span_id"] in ids else ""].append(s)
    lines = []

    def walk(parent, depth):
        for s in sorted(by_parent.get(parent, []), key=lambda s: s["start_ns"]):
            lines.append("  %s%s %s  [%s] %s%s" % (
                "  " * depth, s["kind"], s["name"], s["service"], s["span_id"],
                "" if s["status"] == "STATUS_CODE_UNSET" else " " + s["status"]))
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return "\n".join(lines)


# ---------------------------------------------------------------- scenarios

def run(scenario, protocol, a, sink, key):
    ready = sink.ready
    endpoint = ("http://127.0.0.1:%d" % ready["grpc_port"] if protocol == "otlp-grpc"
                else "http://127.0.0.1:%d/v1/traces" % ready["http_port"])
    sink_proto = "grpc" if protocol == "otlp-grpc" else "http"

    def flags(service):
        return ["--trace-exporter", protocol, "--trace-endpoint", endpoint, "--service-name", service]

    if scenario == "call":
        master = Child("master", [a.sealrpc, "master", "--listen", "tcp://127.0.0.1:0", "--key", key]
                       + flags("sealrpc-master"))
        url = master.wait_stderr(r"^sealrpc master listening on (tcp://\S+)$", 15).group(1)
        cli = Child("call", [a.sealrpc, "call", "--master", url, "--key", key, "--timeout", "10"]
                    + flags("sealrpc-cli") + ["test.echo", "hi"])
        rc = cli.finish(30)
        out = "\n".join(cli.out)
        if rc != 0:
            raise Fail("sealrpc call exited %s:\n%s" % (rc, cli.tail()))
        if json.loads(out) != "hi":
            raise Fail("sealrpc call printed %r, expected \"hi\"" % out)
    else:
        master = Child("master", [a.sealrpc, "master", "--listen", "tcp://127.0.0.1:0",
                                  "--listen", "ws://127.0.0.1:0/sealrpc", "--listen", "zmq://127.0.0.1:0",
                                  "--key", key] + flags("sealrpc-master"))
        urls = {scheme: master.wait_stderr(r"^sealrpc master listening on (%s://\S+)$" % scheme, 15).group(1)
                for scheme in ("tcp", "ws", "zmq")}
        master.wait_stderr(r"^sealrpc master publishing on zmq://\S+$", 15)
        minions = [Child(m, [a.sealrpc, "minion", "--master", urls[scheme], "--id", m, "--key", key]
                         + flags("sealrpc-minion-" + m)) for m, scheme in MINIONS]
        for (m, _), c in zip(MINIONS, minions):
            c.wait_stderr(r"^sealrpc minion %s ready$" % re.escape(m), 15)
        pub = Child("publish", [a.sealrpc, "publish", "--master", urls["tcp"], "--key", key,
                                "--target", "*", "--timeout", "10"]
                    + flags("sealrpc-cli") + ["test.ping"])
        rc = pub.finish(40)
        out = "\n".join(pub.out)
        if rc != 0:
            raise Fail("sealrpc publish exited %s:\n%s" % (rc, pub.tail()))
        want = {m: True for m, _ in MINIONS}
        try:
            got = json.loads(out)
        except ValueError:
            raise Fail("sealrpc publish printed no JSON: %r" % out)
        if got != want:
            raise Fail("sealrpc publish printed %r, expected %r" % (got, want))
        # Each minion flushes its spans on SIGTERM and exits 0: signal them
        # all, then wait for every one of them.
        for c in minions:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        bad = []
        for c in minions:
            try:
                c.stop(15)
            except Fail as e:
                bad.append(str(e))
        if bad:
            raise Fail("\n".join(bad))
    master.stop(15)

    # Every process has ended and flushed. Poll the collector until the run's
    # spans are all there, then a sync barrier so nothing read late is missed.
    sink.poll_until(sink_proto, lambda spans: not problems(scenario, spans), a.wait)
    sink.barrier()
    spans = sink.received(sink_proto)
    headers = sink.headers(sink_proto)
    errs = problems(scenario, spans)
    if protocol == "otlp-http":
        bad = sorted({h.get("content-type", "") for h in headers} - {"application/x-protobuf"})
        if bad:
            errs.append("OTLP/HTTP requests with Content-Type %s, expected application/x-protobuf" % bad)
    agents = sorted({h.get("user-agent", "?") for h in headers})
    traces = sorted({s["trace_id"] for s in spans})
    roots = [s for s in spans if s["kind"] == "INTERNAL" and s["name"] == JOB_ROOT]
    if scenario == "job" and len(roots) == 1:
        job = roots[0]["trace_id"]
        ids = "%s (the job: %d spans), plus %d registration trace(s)" % (
            job, sum(1 for s in spans if s["trace_id"] == job), len(traces) - 1)
    else:
        ids = ",".join(traces) or "-"
    print("%s: %d spans in %d request(s) to the collector's %s receiver, trace id %s, user-agent %s"
          % (protocol, len(spans), len(headers), sink_proto.upper(), ids, ",".join(agents)))
    if headers and protocol == "otlp-http":
        print("  content-type %s" % ",".join(sorted({h.get("content-type", "") for h in headers})))
    print(tree(spans))
    if errs:
        raise Fail("the trace is not intact:\n  - " + "\n  - ".join(errs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sealrpc", default=os.path.join(REPO, "target", "release", "sealrpc"))
    ap.add_argument("--scenario", choices=SCENARIOS + ("all",), default="call",
                    help="call, job, or all (call then job; default call)")
    ap.add_argument("--protocol", choices=PROTOCOLS + ("both",), default="both")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the spans (default 30)")
    ap.add_argument("--python", default=sys.executable,
                    help="Python with requirements.txt installed, runs the collector (default: this one)")
    a = ap.parse_args()
    a.sealrpc = os.path.abspath(a.sealrpc)
    if not os.access(a.sealrpc, os.X_OK):
        sys.exit("FAIL: no sealrpc binary at %s (cargo build --release, or pass --sealrpc)" % a.sealrpc)

    atexit.register(kill_children)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda n, _f: sys.exit(128 + n))

    failures = []
    with tempfile.TemporaryDirectory(prefix="sealrpc-otlp-") as tmp:
        try:
            key = os.path.join(tmp, "master.key")
            kg = subprocess.run([a.sealrpc, "keygen", "--out", key], env=child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
            if kg.returncode != 0:
                raise Fail("sealrpc keygen exited %s: %s" % (kg.returncode, kg.stdout.strip()))
            for scenario in (SCENARIOS if a.scenario == "all" else (a.scenario,)):
                # A fresh collector per scenario: what it received is that
                # scenario's spans only.
                sink = Sink(a.python)
                ready = sink.wait_ready(30)
                print("collector: oteltest %s sinks (grpcio %s, protobuf %s, opentelemetry-proto %s), pid %d, "
                      "OTLP/gRPC on 127.0.0.1:%d, OTLP/HTTP on 127.0.0.1:%d"
                      % (ready["versions"]["oteltest"], ready["versions"]["grpcio"], ready["versions"]["protobuf"],
                         ready["versions"]["opentelemetry-proto"], sink.proc.pid,
                         ready["grpc_port"], ready["http_port"]))
                print("scenario: %s" % scenario)
                for protocol in (PROTOCOLS if a.protocol == "both" else (a.protocol,)):
                    try:
                        run(scenario, protocol, a, sink, key)
                        print("%s: OK" % protocol)
                    except Fail as e:
                        failures.append("%s %s" % (scenario, protocol))
                        print("FAIL %s (%s): %s" % (protocol, scenario, e), file=sys.stderr)
                    finally:
                        # Nothing of one run may leak into the next.
                        for c in CHILDREN:
                            if c is not sink and c.proc.poll() is None:
                                c.proc.kill()
                                c.proc.wait()
                sink.close()
        except Fail as e:
            failures.append("setup")
            print("FAIL: %s" % e, file=sys.stderr)
        finally:
            kill_children()
    if failures:
        sys.exit("FAIL: OTLP interop (%s): %s" % (a.scenario, ", ".join(failures)))
    print("OTLP interop (%s): %s trace%s intact" % (
        ", ".join(SCENARIOS) if a.scenario == "all" else a.scenario,
        " and ".join(PROTOCOLS) if a.protocol == "both" else a.protocol,
        "s" if a.protocol == "both" or a.scenario == "all" else ""))


if __name__ == "__main__":
    main()
