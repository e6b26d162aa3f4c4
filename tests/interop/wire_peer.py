#!/usr/bin/env python3
"""An independent sealrpc peer, written from docs/wire-format.md alone.

1. Re-derives the published test vector (key id, HKDF session key, nonce,
   AES-256-GCM with the header as associated data) and checks the exact bytes.
2. With --master tcp://HOST:PORT --key FILE: calls test.echo on a running
   sealrpc master over TCP, opens the sealed reply, and prints the result.
"""
import argparse, hashlib, os, socket, struct, sys, time

import msgpack
from cryptography.hazmat.primitives import hashes
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


def call(master, key_file, args):
    k = bytes.fromhex(open(key_file).read().strip())
    host, port = master[len("tcp://"):].rsplit(":", 1)
    body = msgpack.packb(args, use_bin_type=True)
    salt = os.urandom(16)
    env = seal(k, salt, 0, int(time.time() * 1000), 1, [7, "test.echo", body, 5000])
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">I", len(env)) + env)
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        reply = open_envelope(k, recv_exact(s, n), 2, binding=salt)
    rid, status, rbody = reply
    assert rid == 7 and status == 0, reply
    result = msgpack.unpackb(rbody, raw=False)
    print("python peer called test.echo over tcp: %r" % (result,))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--master")
    p.add_argument("--key")
    a = p.parse_args()
    check_vector()
    if a.master:
        if call(a.master, a.key, ["from python", 3]) != ["from python", 3]:
            sys.exit("unexpected echo result")
