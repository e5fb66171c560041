#!/usr/bin/env python3
"""flowgate's inputs from setup.sh's data (both gateways then read the same bytes).

usage: make_inputs.py DATA      (writes DATA/flowgate/country.mmdb and cidr_50000.txt)

* country.mmdb: the ip-location-db country database (npm) ships metadata `description: {}`.
  flowgate opens every database with the maxminddb crate's `Reader::verify()`, which refuses
  an empty description ("description - Expected: non-empty map"), so the copy gets a one-entry
  description {"en": ...}. Search tree and data section stay byte-identical (checked below);
  nginx (libmaxminddb) is given the same copy. A database that already has a description is
  copied unchanged.
* cidr_50000.txt: the nginx `geo` list (gen/cidr_50000.csv) as one network per line.
"""
import hashlib
import os
import sys

MARKER = b"\xab\xcd\xefMaxMind.com"
KEY = b"\x4bdescription"  # mmdb utf8 string (type 2), length 11


def fix_description(src, dst, text="geo-whois-asn-country"):
    buf = open(src, "rb").read()
    i = buf.rfind(MARKER)
    assert i > 0, f"{src}: no mmdb metadata marker"
    start = i + len(MARKER)
    meta = buf[start:]
    k = meta.find(KEY)
    assert k >= 0, f"{src}: no description key in the metadata"
    v = k + len(KEY)
    if meta[v] == 0xE0:  # map with 0 entries -> map{1}: "en" -> text
        t = text.encode()
        meta = meta[:v] + bytes([0xE1, 0x42]) + b"en" + bytes([0x40 | len(t)]) + t + meta[v + 1:]
        what = "empty description replaced"
    else:
        what = "description already set, copied as is"
    out = buf[:start] + meta
    assert hashlib.sha256(out[:start]).digest() == hashlib.sha256(buf[:start]).digest()
    with open(dst + ".tmp", "wb") as f:
        f.write(out)
    os.replace(dst + ".tmp", dst)
    print(f"{dst}: {what} (tree + data unchanged, sha256 {hashlib.sha256(buf[:start]).hexdigest()[:16]})")


def cidr_txt(src, dst):
    with open(src) as f:
        nets = [line.split(",", 1)[0].strip() for line in f if line.strip()]
    with open(dst + ".tmp", "w") as f:
        f.write("\n".join(nets) + "\n")
    os.replace(dst + ".tmp", dst)
    print(f"{dst}: {len(nets)} networks")


if __name__ == "__main__":
    data = sys.argv[1] if len(sys.argv) > 1 else "/tmp/peerdata"
    out = os.path.join(data, "flowgate")
    os.makedirs(out, exist_ok=True)
    fix_description(os.path.join(data, "country.mmdb"), os.path.join(out, "country.mmdb"))
    cidr_txt(os.path.join(data, "gen", "cidr_50000.csv"), os.path.join(out, "cidr_50000.txt"))
