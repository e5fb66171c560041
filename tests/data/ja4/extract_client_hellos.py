#!/usr/bin/env python3
"""Pulls each TCP stream's first TLS ClientHello record out of a pcap or pcapng file, with
the JA4 that FoxIO's own test output (python/test/testdata/<pcap>.json) gives that stream.

Run once, by hand, to make tests/data/ja4/: `extract_client_hellos.py OUT_DIR PCAP...` with
each PCAP's `.json` beside it. Plain Python, no packages: pcap/pcapng, Ethernet (with VLAN
tags), Linux cooked capture or BSD loopback, IPv4/IPv6, TCP; the record is reassembled from the client's
segments in capture order."""
import ipaddress, json, os, struct, sys


def packets(data):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        e = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
        link = struct.unpack(e + "I", data[20:24])[0]
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            yield link, data[off + 16:off + 16 + incl]
            off += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        off, links, e = 0, [], "<"
        while off + 12 <= len(data):
            btype = struct.unpack(e + "I", data[off:off + 4])[0]
            if btype == 0x0A0D0D0A:
                e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            body = data[off + 8:off + blen - 4]
            if btype == 1:
                links.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6:
                iface, _, _, cap = struct.unpack(e + "IIII", body[:16])
                yield links[iface], body[20:20 + cap]
            elif btype == 3:
                yield links[0], body[4:]
            off += blen
    else:
        raise SystemExit("not a pcap or pcapng file")


def tcp(link, frame):
    if link == 1:
        etype, off = struct.unpack(">H", frame[12:14])[0], 14
        while etype in (0x8100, 0x88A8):
            etype, off = struct.unpack(">H", frame[off + 2:off + 4])[0], off + 4
    elif link == 113:
        etype, off = struct.unpack(">H", frame[14:16])[0], 16
    elif link == 0:
        # BSD loopback: a 4-byte address family in host order (2 IPv4; 24, 28 or 30 IPv6).
        family = struct.unpack("<I", frame[:4])[0]
        etype, off = (0x0800 if family == 2 else 0x86DD), 4
    else:
        return None
    ip = frame[off:]
    if etype == 0x0800 and ip[9] == 6:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        src, dst, seg = ip[12:16], ip[16:20], ip[ihl:total]
    elif etype == 0x86DD and ip[6] == 6:
        plen = struct.unpack(">H", ip[4:6])[0]
        src, dst, seg = ip[8:24], ip[24:40], ip[40:40 + plen]
    else:
        return None
    sport, dport = struct.unpack(">HH", seg[:4])
    doff = (seg[12] >> 4) * 4
    return (str(ipaddress.ip_address(src)), sport, str(ipaddress.ip_address(dst)), dport), seg[doff:]


def client_hellos(data):
    """{(src, sport): record bytes} for each stream whose client sent a ClientHello."""
    partial, done = {}, {}
    for link, frame in packets(data):
        t = tcp(link, frame)
        if not t or not t[1]:
            continue
        (src, sport, _, _), payload = t
        key = (src, sport)
        if key in done:
            continue
        if key not in partial:
            if len(payload) > 5 and payload[0] == 0x16 and payload[1] == 3 and payload[5] == 1:
                partial[key] = bytearray(payload)
            else:
                continue
        else:
            partial[key] += payload
        rec = partial[key]
        need = 5 + struct.unpack(">H", rec[3:5])[0]
        if len(rec) >= need:
            done[key] = bytes(rec[:need])
            del partial[key]
    return done


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = []
    for path in sys.argv[2:]:
        name = os.path.basename(path)
        hellos = client_hellos(open(path, "rb").read())
        for s in json.load(open(path + ".json")):
            ja4 = s.get("JA4.1")
            rec = hellos.get((s.get("src"), int(s.get("srcport", 0))))
            if not ja4 or rec is None:
                continue
            file = f"{name}-{s['stream']}.bin"
            if any(l.split()[1] == ja4 for l in lines):
                continue
            open(os.path.join(out, file), "wb").write(rec)
            lines.append(f"{file} {ja4}")
    open(os.path.join(out, "expected.txt"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


main()
