#!/usr/bin/env python3
"""Independently re-derive testdata/sealed/vectors.json from docs/protocol.md.

Needs Python 3 and the `cryptography` package (Ed25519 and RFC 8439
ChaCha20-Poly1305); HChaCha20, for XChaCha20-Poly1305, is written out below.
Not run by the Go tests (they must not need Python); run it by hand after
changing the format:

    python3 testdata/sealed/verify_vectors.py [path/to/vectors.json]
"""

import base64
import hashlib
import ipaddress
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    """draft-irtf-cfrg-xchacha-03 section 2.2."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_seal(key, nonce, plaintext, ad):
    sub = hchacha20(key, nonce[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0" + nonce[16:], plaintext, ad)


def key_text(prefix, body):
    check = hashlib.sha256(prefix.encode() + body).digest()[:4]
    return prefix + base64.urlsafe_b64encode(body + check).decode().rstrip("=")


def payload_bytes(p):
    name = p["name"].encode("utf-8")
    flags = (1 if p.get("ipv4") else 0) | (2 if p.get("ipv6") else 0)
    b = bytes([flags, len(name)]) + name
    if p.get("ipv4"):
        b += ipaddress.IPv4Address(p["ipv4"]).packed
    if p.get("ipv6"):
        b += ipaddress.IPv6Address(p["ipv6"]).packed
    return b + struct.pack(">QqI", p["seq"], p["issued_at_unix"], p["heartbeat_seconds"])


def armour(frame):
    enc = base64.b64encode(frame).decode()
    lines = [enc[i:i + 64] for i in range(0, len(enc), 64)]
    return "-----BEGIN IPSYNC MESSAGE-----\n" + "\n".join(lines) + "\n-----END IPSYNC MESSAGE-----\n"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "vectors.json")
    v = json.load(open(path))
    rnd = bytes.fromhex(v["keygen_random"])
    secret, seed = rnd[:32], rnd[32:64]
    priv = Ed25519PrivateKey.from_private_bytes(seed)
    pub = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(b"ipsync key id v1" + pub).digest()[:8]
    checks = [
        ("server_key", key_text("ipsync-server-1:", secret + seed)),
        ("client_key", key_text("ipsync-client-1:", secret + pub)),
        ("key_id", key_id.hex()),
    ]
    for m in v["messages"]:
        nonce = bytes.fromhex(m["nonce"])
        pt = payload_bytes(m["payload"])
        header = bytes([1]) + key_id + nonce + bytes([len(pt) + 64 + 16])
        sig = priv.sign(b"ipsync-sealed-v1" + header + pt)
        frame = header + xchacha_seal(secret, nonce, pt + sig, header)
        checks += [
            (m["name"] + " plaintext", pt.hex(), m["plaintext"]),
            (m["name"] + " frame", frame.hex(), m["frame"]),
            (m["name"] + " armour", armour(frame), m["armour"]),
        ]
    failed = 0
    for c in checks:
        name, got = c[0], c[1]
        want = c[2] if len(c) > 2 else v[name]
        ok = got == want
        failed += not ok
        print(("ok  " if ok else "FAIL") + " " + name + ("" if ok else "\n  got  %r\n  want %r" % (got, want)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
