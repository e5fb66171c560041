#!/usr/bin/env python3
"""Writes country-ipv4.mmdb: a tiny IPv4 country database in the layout of ip-location-db's
country databases (the npm package @ip-location-db/geo-whois-asn-country-mmdb, 2.3.2026061719):
metadata keys in its order and encodings, `description` an empty map, `languages` an empty
list, database_type "country ipv4", record_size 24, records `{country_code: "XX"}` whose key
is written once and pointed to after. The networks below are made up for the test; no data of
the package is in it. Run from this folder: python3 make-country-fixture.py
"""
import ipaddress
import struct

NETWORKS = [("1.0.0.0/24", "AU"), ("8.8.8.0/24", "US"), ("81.2.69.0/24", "GB")]
BUILD_EPOCH = 1781000000


def ctl(kind, size):
    if kind > 7:
        return bytes([size, kind - 7])
    return bytes([(kind << 5) | size])


def string(s):
    return ctl(2, len(s)) + s.encode()


def uint(kind, v, width):
    return ctl(kind, width) + v.to_bytes(width, "big")


# Data section: each record a map of one entry; the key "country_code" is written by the
# first record and the others point at it (a pointer of size 0: 11 bits, here offset 1).
data = b""
offsets = {}
for _, cc in NETWORKS:
    offsets[cc] = len(data)
    key = string("country_code") if not data else bytes([0x20, 0x01])
    data += ctl(7, 1) + key + string(cc)

# The search tree: one node per prefix bit on the way to a network.
tree = {}  # node -> [left, right]; children are node ids or ("data", cc) or None
root = 0
tree[root] = [None, None]
count = 1
for net, cc in NETWORKS:
    n = ipaddress.ip_network(net)
    bits = format(int(n.network_address), "032b")[: n.prefixlen]
    node = root
    for i, b in enumerate(bits):
        side = int(b)
        if i == len(bits) - 1:
            tree[node][side] = ("data", cc)
        else:
            if tree[node][side] is None:
                tree[count] = [None, None]
                tree[node][side] = count
                count += 1
            node = tree[node][side]

node_count = count
out = b""
for i in range(node_count):
    for rec in tree[i]:
        if rec is None:
            v = node_count
        elif isinstance(rec, tuple):
            v = node_count + 16 + offsets[rec[1]]
        else:
            v = rec
        out += v.to_bytes(3, "big")
out += b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com"
out += ctl(7, 9)
out += string("binary_format_major_version") + uint(5, 2, 1)
out += string("binary_format_minor_version") + ctl(5, 0)
out += string("build_epoch") + uint(9, BUILD_EPOCH, 4)
out += string("database_type") + string("country ipv4")
out += string("description") + ctl(7, 0)
out += string("ip_version") + uint(5, 4, 1)
out += string("languages") + ctl(11, 0)
out += string("node_count") + uint(6, node_count, 3)
out += string("record_size") + uint(5, 24, 1)
open("country-ipv4.mmdb", "wb").write(out)
