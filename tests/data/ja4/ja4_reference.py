#!/usr/bin/env python3
"""JA4 of a TLS ClientHello record, written from FoxIO's specification
(github.com/FoxIO-LLC/ja4, technical_details/JA4.md) with its own byte parser: the
reference flowgate's tests compare flowgate's fingerprint with.

Usage: ja4_reference.py FILE   (FILE holds the bytes a client sent, from its first record on)
Prints the JA4, or exits 1 when the bytes do not begin with a whole ClientHello record."""
import hashlib
import struct
import sys


def grease(v):
    return v & 0x0F0F == 0x0A0A and v >> 8 == v & 0xFF


VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
            0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


def u16s(b):
    return [struct.unpack(">H", b[i:i + 2])[0] for i in range(0, len(b) - 1, 2)]


def hash12(items):
    return hashlib.sha256(items.encode()).hexdigest()[:12]


def ja4(data):
    if len(data) < 5 or data[0] != 0x16:
        return None
    (rec_len,) = struct.unpack(">H", data[3:5])
    rec = data[5:5 + rec_len]
    if len(rec) < rec_len or rec[0] != 1:
        return None
    body_len = int.from_bytes(rec[1:4], "big")
    hello = rec[4:4 + body_len]
    (legacy_version,) = struct.unpack(">H", hello[0:2])
    p = 2 + 32
    p += 1 + hello[p]  # session id
    (n,) = struct.unpack(">H", hello[p:p + 2])
    ciphers = [c for c in u16s(hello[p + 2:p + 2 + n]) if not grease(c)]
    p += 2 + n
    p += 1 + hello[p]  # compression methods
    exts, version, alpn, sigs = [], legacy_version, None, []
    if p < len(hello):
        (n,) = struct.unpack(">H", hello[p:p + 2])
        ext_block, q = hello[p + 2:p + 2 + n], 0
        while q + 4 <= len(ext_block):
            t, ln = struct.unpack(">HH", ext_block[q:q + 4])
            content = ext_block[q + 4:q + 4 + ln]
            q += 4 + ln
            if grease(t):
                continue
            exts.append(t)
            if t == 0x002B:  # supported_versions: a one-byte length, then versions
                vs = [v for v in u16s(content[1:1 + content[0]]) if not grease(v)]
                version = max(vs) if vs else version
            elif t == 0x0010 and len(content) > 2 and content[2] > 0:
                alpn = content[3:3 + content[2]]
            elif t == 0x000D:  # signature_algorithms: a two-byte length, then algorithms
                (ln,) = struct.unpack(">H", content[:2])
                sigs = u16s(content[2:2 + ln])
    if not alpn:
        alpn_code = "00"
    elif chr(alpn[0]).isalnum() and chr(alpn[-1]).isalnum() and max(alpn[0], alpn[-1]) < 128:
        alpn_code = chr(alpn[0]) + chr(alpn[-1])
    else:
        alpn_code = alpn.hex()[0] + alpn.hex()[-1]
    a = "t{}{}{:02d}{:02d}{}".format(
        VERSIONS.get(version, "00"),
        "d" if 0x0000 in exts else "i",
        min(len(ciphers), 99),
        min(len(exts), 99),
        alpn_code,
    )
    b = hash12(",".join("%04x" % c for c in sorted(ciphers))) if ciphers else "0" * 12
    kept = sorted(e for e in exts if e not in (0x0000, 0x0010))
    c_text = ",".join("%04x" % e for e in kept)
    if sigs:
        c_text += "_" + ",".join("%04x" % s for s in sigs)
    c = hash12(c_text) if kept else "0" * 12
    return f"{a}_{b}_{c}"


if __name__ == "__main__":
    fp = ja4(open(sys.argv[1], "rb").read())
    if fp is None:
        sys.exit(1)
    print(fp)
