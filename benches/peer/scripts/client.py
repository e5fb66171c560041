#!/usr/bin/env python3
"""Fixed-count HTTP/1.1 keep-alive client for the callgrind bench (not run under valgrind).

Replays the bench's request pool (reqpool.tsv: "ip\\tua\\tpath") the way
mix.lua does: one GET per pool line with X-Forwarded-For = ip,
User-Agent = ua (omitted when empty), the line's path, and mix.lua's Accept* headers. Request i
(0-based) uses pool line (OFFSET + i) mod len(pool), so N = len(pool) sends every line once.

usage: client.py --port P --pool FILE -n N [-c C] [--offset K] [--wait S] [--timeout S]

  --wait S   first wait (up to S seconds) until the server accepts a connection and answers
             one request (the "probe": pool line 0 on its own connection, then closed);
             the probe is not counted in N.
  -n N       then send exactly N requests over C keep-alive connections (N=0: probe only).

Prints one line "CLIENT key=value ..." and exits non-zero on any error (connect/read error,
status not 2xx/3xx, server closing a connection, timeout).
"""
import argparse
import asyncio
import json
import sys
import time

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def build(pool_path, port, fixed_path=None):
    reqs = []
    host = f"127.0.0.1:{port}"
    with open(pool_path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            ip, ua, path = parts
            h = [f"GET {fixed_path or path} HTTP/1.1", f"Host: {host}", f"X-Forwarded-For: {ip}",
                 f"Accept: {ACCEPT}", "Accept-Language: en-US,en;q=0.9",
                 "Accept-Encoding: gzip, deflate"]
            if ua:
                h.append(f"User-Agent: {ua}")
            reqs.append(("\r\n".join(h) + "\r\n\r\n").encode("utf-8", "surrogateescape"))
    if not reqs:
        sys.exit(f"no requests in {pool_path}")
    return reqs


async def read_response(reader):
    """-> (status, body_len, server_wants_close)"""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    hdrs = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    close = hdrs.get("connection", "").lower() == "close"
    if status in (204, 304) or 100 <= status < 200:
        return status, 0, close
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        n = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return status, n, close
            await reader.readexactly(size + 2)
            n += size
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        await reader.readexactly(n)
        return status, n, close
    body = await reader.read()  # until close
    return status, len(body), True


async def probe(port, req, wait_s, timeout):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < wait_s:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (OSError, asyncio.TimeoutError) as e:
            last = e
            await asyncio.sleep(0.2)
            continue
        try:
            w.write(req)
            await w.drain()
            status, _, _ = await asyncio.wait_for(read_response(r), timeout)
            w.close()
            if not 200 <= status < 400:
                sys.exit(f"CLIENT probe: status {status}")
            return status, time.monotonic() - t0
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            last = e
            w.close()
            await asyncio.sleep(0.2)
    sys.exit(f"CLIENT probe: port {port} did not answer within {wait_s}s ({last!r})")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("-c", type=int, default=4)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--wait", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=60, help="per request, seconds")
    ap.add_argument("--fixed-path")
    a = ap.parse_args()
    reqs = build(a.pool, a.port, a.fixed_path)
    out = {"n": a.n, "c": a.c, "offset": a.offset, "pool": len(reqs)}
    if a.wait > 0:
        st, secs = await probe(a.port, reqs[0], a.wait, a.timeout)
        out["probe_status"] = st
        out["probe_s"] = round(secs, 2)
    statuses = {}
    errors = []
    nbytes = 0
    nxt = 0

    async def worker(cid):
        nonlocal nxt, nbytes
        r = w = None
        try:
            while nxt < a.n and not errors:
                i = nxt
                nxt += 1
                if w is None:
                    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port), 10)
                w.write(reqs[(a.offset + i) % len(reqs)])
                await w.drain()
                status, blen, close = await asyncio.wait_for(read_response(r), a.timeout)
                statuses[status] = statuses.get(status, 0) + 1
                nbytes += blen
                if not 200 <= status < 400:
                    errors.append(f"request {i}: status {status}")
                if close:
                    errors.append(f"request {i}: server closed the keep-alive connection")
                    w.close()
                    r = w = None
        except Exception as e:  # noqa: BLE001 - any failure fails the run
            errors.append(f"conn {cid}: {e!r}")
        finally:
            if w is not None:
                w.close()
                try:
                    await w.wait_closed()
                except Exception:  # noqa: BLE001
                    pass

    t0 = time.monotonic()
    if a.n > 0:
        await asyncio.gather(*(worker(c) for c in range(min(a.c, a.n))))
    out["secs"] = round(time.monotonic() - t0, 2)
    out["done"] = sum(statuses.values())
    out["statuses"] = json.dumps(statuses, separators=(",", ":"))
    out["body_bytes"] = nbytes
    out["errors"] = len(errors)
    print("CLIENT " + " ".join(f"{k}={v}" for k, v in out.items()), flush=True)
    if errors or out["done"] != a.n:
        for e in errors[:10]:
            print("CLIENT error: " + e, file=sys.stderr)
        sys.exit(1)


asyncio.run(main())
