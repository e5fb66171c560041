#!/usr/bin/env python3
"""Memory held by half-sent request headers (issue 10): N connections each send SIZE bytes of
a request header that never ends, held open while flowgate's VmRSS is sampled, then closed;
ROUNDS times, to see whether what they took comes back. With `--over` each sends a header
past limits.max_header_bytes instead (the issue's 1000 KiB case: 431 and closed).

    benches/peer/halfsent.py [--conns 300] [--size 61440] [--rounds 3] [--over]

FLOWGATE=/path/to/flowgate picks the binary (default: target/release, else target/debug).
127.0.0.1 only; the connections come from 127.0.0.2-127.0.0.N (100 each), so the per-address
limit (256) does not refuse them; trusted_proxies is empty."""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from fgproc import Flowgate, get  # noqa: E402

PER_SOURCE = 100


def open_halfsent(fg, n, size, over):
    socks = []
    # Ends in the middle of a header line: the request is never complete.
    head = b"GET /lp HTTP/1.1\r\nHost: bench.example\r\nX-Pad: "
    pad = b"a" * (size - len(head))
    for i in range(n):
        src = f"127.0.0.{2 + i // PER_SOURCE}"
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(5)
        s.connect(fg.addr)
        try:
            s.sendall(head + pad)
        except OSError:
            pass  # --over: flowgate answered 431 and closed mid-send
        socks.append(s)
    return socks


def sample_peak(fg, seconds):
    peak = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, fg.status("VmRSS"))
        time.sleep(0.05)
    return peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--size", type=int, default=60 << 10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--over", action="store_true", help="send 1000 KiB: over max_header_bytes")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    size = 1000 << 10 if args.over else args.size
    # header_timeout long enough that the measurement, not the deadline, ends each round.
    fg = Flowgate("trusted_proxies: []\nlimits: { header_timeout: 60s }\n", args.threads)
    try:
        for _ in range(20):
            get(fg.addr)
        base = fg.status("VmRSS")
        print(f"binary: {fg.bin}")
        print(f"{args.conns} connections x {size >> 10} KiB of unfinished header, {args.rounds} rounds")
        print(f"before: VmRSS {base / 1024:.1f} MB")
        for r in range(1, args.rounds + 1):
            t0 = time.monotonic()
            socks = open_halfsent(fg, args.conns, size, args.over)
            sent = time.monotonic() - t0
            peak = sample_peak(fg, 2.0)
            held = fg.metric("flowgate_connections_open")
            for s in socks:
                s.close()
            closed = fg.wait_metric("flowgate_connections_open", 0.0, 30)
            time.sleep(1.0)  # what the allocator gives back on its own, not at once
            after = fg.status("VmRSS")
            print(
                f"round {r}: sent in {sent:.1f}s, {held:.0f} held open, peak VmRSS "
                f"{peak / 1024:.1f} MB (+{(peak - base) / 1024:.1f}), after close "
                f"{after / 1024:.1f} MB (+{(after - base) / 1024:.1f})"
                + ("" if closed else ", connections still open after 30 s!")
            )
        print(f"VmHWM {fg.status('VmHWM') / 1024:.1f} MB")
        get(fg.addr)  # still serving
    finally:
        fg.stop()


if __name__ == "__main__":
    main()
