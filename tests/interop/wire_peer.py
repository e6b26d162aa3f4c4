#!/usr/bin/env python3
"""An independent sealrpc peer, written from docs/wire-format.md alone.

1. Re-derives the published test vector (key id, HKDF session key, nonce,
   AES-256-GCM with the header as associated data) and checks the exact bytes.
2. With --master tcp://HOST:PORT --key FILE: calls test.echo on a running
   sealrpc master over TCP, opens the sealed reply, and prints the result.
3. With --zmq zmq://HOST:PORT (or tcp://HOST:PORT): the same call from a
   pyzmq DEALER (real libzmq: a third-party ZMTP stack), one single-part
   message each way.
4. With --ws ws://HOST:PORT/PATH: the same call from the Python `websockets`
   client, one binary message each way.
Options 2-4 may be combined; each runs its own call on its own connection.
pyzmq and websockets are imported only when their option is used.
"""
import argparse, hashlib, os, socket, struct, sys, time

import msgpack
from cryptography.hazmat.primitives import hashes
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = os.path.dirname(os.path.abspath(__file__))


def key_id(k):
    return hashlib.sha256(b"sealrpc key id v1" + k).digest()[:4]


def session_key(k, salt):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"sealrpc v1 session key").derive(k)


def seal(k, salt, seq, time_ms, kind, load):
    header = b"SR" + bytes([1, kind]) + key_id(k) + salt + struct.pack(">QQ", seq, time_ms)
    nonce = b"\0\0\0\0" + struct.pack(">Q", seq)
    return header + AESGCM(session_key(k, salt)).encrypt(nonce, msgpack.packb(load, use_bin_type=True), header)


def open_envelope(k, env, expect_kind, binding=b""):
    """binding: for replies, the salt of our first request on this connection."""
    if len(env) < 56 or env[:3] != b"SR\x01" or env[3] != expect_kind or env[4:8] != key_id(k):
        raise ValueError("not a valid envelope for this key: %r" % env[:8])
    header, salt = env[:40], env[8:24]
    seq, _time_ms = struct.unpack(">QQ", env[24:40])
    nonce = b"\0\0\0\0" + struct.pack(">Q", seq)
    aad = header + binding
    return msgpack.unpackb(AESGCM(session_key(k, salt)).decrypt(nonce, env[40:], aad), raw=False)


def check_vector():
    k = bytes(range(32))
    load = [1, "test.echo", b"\x91\xa5hello", 30000,
            [["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]]]
    got = seal(k, bytes(range(0xA0, 0xB0)), 0, 1767225600000, 1, load).hex()
    want = open(os.path.join(HERE, "..", "data", "wire-vector.hex")).read().strip()
    if got != want:
        sys.exit("vector mismatch:\n got  %s\n want %s" % (got, want))
    assert key_id(k).hex() == want[8:16]
    assert open_envelope(k, bytes.fromhex(want), 1) == load
    print("wire vector: OK (%d bytes re-derived independently)" % (len(got) // 2))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


ALERT = b"SR\x01\x7f"
TIMEOUT_S = 10


def check_not_alert(payload, transport):
    if len(payload) == 5 and payload[:4] == ALERT:
        raise SystemExit("%s: the master refused our envelope (alert code %d)" % (transport, payload[4]))
    return payload


def tcp_exchange(url, env):
    host, port = url[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">I", len(env)) + env)
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        return recv_exact(s, n)


def zmq_exchange(url, env):
    import zmq  # pyzmq, bundling libzmq

    endpoint = "tcp://" + url.split("://", 1)[1]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        # No routing identity set: the ROUTER assigns one. LINGER 0 so a
        # failed run never hangs on close; RCVTIMEO/SNDTIMEO bound the wait.
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, TIMEOUT_S * 1000)
        sock.setsockopt(zmq.SNDTIMEO, TIMEOUT_S * 1000)
        sock.connect(endpoint)
        sock.send(env)  # one single-part message, no empty delimiter (DEALER<->ROUTER)
        try:
            parts = sock.recv_multipart()
        except zmq.Again:
            raise SystemExit("zmq: no reply within %d s" % TIMEOUT_S)
        if len(parts) != 1:
            raise SystemExit("zmq: expected a single-part reply, got %d parts" % len(parts))
        return parts[0]
    finally:
        sock.close(linger=0)
        ctx.term()


def ws_exchange(url, env):
    try:
        from websockets.sync.client import connect  # websockets >= 11
    except ImportError:
        connect = None
    if connect is not None:
        with connect(url, open_timeout=TIMEOUT_S, close_timeout=TIMEOUT_S) as ws:
            ws.send(env)  # bytes: one binary message
            reply = ws.recv(timeout=TIMEOUT_S)
    else:
        import asyncio, websockets

        async def go():
            async with websockets.connect(url, open_timeout=TIMEOUT_S, close_timeout=TIMEOUT_S) as ws:
                await ws.send(env)
                return await asyncio.wait_for(ws.recv(), TIMEOUT_S)

        reply = asyncio.run(go())
    if not isinstance(reply, bytes):
        raise SystemExit("ws: expected a binary message, got %s" % type(reply).__name__)
    return reply


EXCHANGES = {"tcp": tcp_exchange, "zmq": zmq_exchange, "ws": ws_exchange}


def call(transport, url, key_file, args):
    """One sealed test.echo on a fresh connection; returns the opened result."""
    k = bytes.fromhex(open(key_file).read().strip())
    body = msgpack.packb(args, use_bin_type=True)
    salt = os.urandom(16)
    env = seal(k, salt, 0, int(time.time() * 1000), 1, [7, "test.echo", body, 5000])
    raw = check_not_alert(EXCHANGES[transport](url, env), transport)
    # Reply AAD = header || binding, binding = the salt of our first request.
    reply = open_envelope(k, raw, 2, binding=salt)
    try:  # the binding really is in the AAD: any other one must fail
        open_envelope(k, raw, 2, binding=bytes(16))
    except InvalidTag:
        pass
    else:
        raise SystemExit("%s: reply opened without its binding" % transport)
    rid, status, rbody = reply
    assert rid == 7 and status == 0, reply
    result = msgpack.unpackb(rbody, raw=False)
    print("python peer called test.echo over %s: %r" % (transport, result))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--master", help="tcp://HOST:PORT")
    p.add_argument("--zmq", help="zmq://HOST:PORT (or tcp://HOST:PORT), called from a pyzmq DEALER")
    p.add_argument("--ws", help="ws://HOST:PORT/PATH, called from the websockets client")
    p.add_argument("--key")
    a = p.parse_args()
    check_vector()
    for transport, url in (("tcp", a.master), ("zmq", a.zmq), ("ws", a.ws)):
        if url:
            if not a.key:
                sys.exit("--key is required for a live call")
            args = ["from python over " + transport, 3, {"k": [1.5, None, True]}]
            if call(transport, url, a.key, args) != args:
                sys.exit("unexpected echo result over %s" % transport)
