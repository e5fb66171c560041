#!/usr/bin/env python3
"""Slowloris against flowgate (issue 10): SLOW connections each send a request header one
byte every INTERVAL seconds, while a normal client sends one GET every 10 ms (on a kept-alive
connection and on a new connection each time, alternately); prints the normal client's
p50/p99 before and during the attack, and when flowgate closed each slow connection (its
limits.header_timeout, default 10 s). Bounded: the attack lasts at most header_timeout + 10 s.

    benches/peer/slowloris.py [--slow 500] [--interval 3] [--header-timeout 10]

FLOWGATE=/path/to/flowgate picks the binary (default: target/release, else target/debug).
127.0.0.1 only: the slow connections come from 127.0.0.10-127.0.0.14 (100 each, under the
per-address limit of 256), the normal client from 127.0.0.1."""

import argparse
import os
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from fgproc import Flowgate, get, percentile  # noqa: E402

PER_SOURCE = 100
HEADER = b"GET /lp HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: slowloris\r\nX-Slow: " + b"a" * 4096


def normal_client(fg, stop, out):
    keep = None
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            if i % 2:
                keep = get(fg.addr, keep or socket.create_connection(fg.addr, timeout=5))
                kind = "keepalive"
            else:
                get(fg.addr)
                kind = "new"
            out.append((time.monotonic(), kind, (time.perf_counter() - t0) * 1000))
        except OSError as e:
            out.append((time.monotonic(), "error", str(e)))
            keep = None
        i += 1
        time.sleep(0.01)


def summary(name, samples):
    ms = [s[2] for s in samples if s[1] != "error"]
    errors = sum(1 for s in samples if s[1] == "error")
    if not ms:
        return f"{name}: no answers, {errors} errors"
    return (
        f"{name}: {len(ms)} requests, p50 {percentile(ms, 50):.2f} ms, p99 "
        f"{percentile(ms, 99):.2f} ms, max {max(ms):.2f} ms, {errors} errors"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", type=int, default=500)
    ap.add_argument("--interval", type=float, default=3.0)
    ap.add_argument("--header-timeout", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fg = Flowgate(
        f"trusted_proxies: []\nlimits: {{ header_timeout: {args.header_timeout}s }}\n", args.threads
    )
    try:
        print(f"binary: {fg.bin}")
        samples, stop = [], threading.Event()
        client = threading.Thread(target=normal_client, args=(fg, stop, samples))
        client.start()
        time.sleep(2.0)
        attack_start = time.monotonic()

        sel = selectors.DefaultSelector()
        opened = {}
        for i in range(args.slow):
            s = socket.socket()
            s.bind((f"127.0.0.{10 + i // PER_SOURCE}", 0))
            s.setblocking(False)
            s.connect_ex(fg.addr)
            opened[s] = [time.monotonic(), 0, None]  # connected at, bytes sent, closed at
            sel.register(s, selectors.EVENT_READ)
        print(f"{args.slow} slow connections opened in {time.monotonic() - attack_start:.2f}s")
        held = fg.metric("flowgate_connections_open")
        next_byte = time.monotonic()
        limit = attack_start + args.header_timeout + 10
        while any(v[2] is None for v in opened.values()) and time.monotonic() < limit:
            now = time.monotonic()
            if now >= next_byte:
                for s, v in opened.items():
                    if v[2] is None and v[1] < len(HEADER):
                        try:
                            v[1] += s.send(HEADER[v[1] : v[1] + 1])
                        except BlockingIOError:
                            pass
                        except OSError:
                            v[2] = now
                next_byte = now + args.interval
            for key, _ in sel.select(timeout=max(0.0, min(next_byte, limit) - now)):
                s, v = key.fileobj, opened[key.fileobj]
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    v[2] = time.monotonic()
                    sel.unregister(s)
        stop.set()
        client.join()
        closed = [v[2] - v[0] for v in opened.values() if v[2] is not None]
        before = [s for s in samples if s[0] < attack_start]
        during = [s for s in samples if s[0] >= attack_start]
        print(f"flowgate_connections_open just after they opened: {held:.0f}")
        print(summary("normal client before", before))
        print(summary("normal client during", during))
        for kind in ("new", "keepalive"):
            print(summary(f"  during, {kind} connection", [s for s in during if s[1] == kind]))
        print(
            f"slow connections closed by flowgate: {len(closed)}/{args.slow}"
            + (
                f", after {min(closed):.1f}-{max(closed):.1f}s (median "
                f"{percentile(closed, 50):.1f}s); header_timeout {args.header_timeout}s"
                if closed
                else ""
            )
        )
        late = sum(1 for c in closed if c > args.header_timeout + 1.5)
        print(f"  closed later than header_timeout + 1.5 s: {late}")
        print(f"bytes each had sent: at most {max(v[1] for v in opened.values())}")
        for s in opened:
            s.close()
    finally:
        fg.stop()


if __name__ == "__main__":
    main()
