#!/usr/bin/env python3
"""Per-request function profile from two callgrind runs of the same gateway + scenario.

usage: cg_profile.py SMALL.out LARGE.out DELTA_REQUESTS [TOP=15]

Runs `callgrind_annotate --inclusive=no --threshold=100` on both files (self Ir of every
function), subtracts small from large per function (start-up and shutdown cancel out), divides
by DELTA_REQUESTS and prints markdown: the TOP functions by self Ir per request, then the same
costs grouped into cost families (first matching rule wins; rules below). Also prints the
top inclusive entries of the large run (callgrind_annotate --inclusive=yes), per request.
"""
import collections
import os
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.*\S)\s*$")


def annotate(path, inclusive):
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100",
                          f"--inclusive={'yes' if inclusive else 'no'}", path],
                         capture_output=True, text=True, check=True).stdout
    costs = collections.Counter()
    total = None
    body = False
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
            continue
        if re.match(r"^\s*Ir\s+file:function", line):
            body = True
            continue
        if not body or line.startswith("-"):
            continue
        m = LINE.match(line)
        if m:
            costs[m.group(2)] += int(m.group(1).replace(",", ""))
    if total is None:
        sys.exit(f"no PROGRAM TOTALS in callgrind_annotate {path}")
    return total, costs


# (family, regex on "file:function [object]") first match wins
RULES = [
    ("allocator (glibc malloc/free/realloc)", r"^\./malloc/|^[^:]*:(malloc|free|_int_\w+|unlink_chunk|malloc_consolidate|realloc|calloc|tcache\w*|sysmalloc)( |$)"),
    ("memcpy/memmove/memset/memcmp (libc)", r"^\./string/|^[^:]*:_*(mem(move|cpy|set|cmp|chr|rchr)|str(len|chr|cmp|ncmp|casecmp|ncasecmp|spn|cspn))"),
    ("libc other (syscall wrappers, clock_gettime, pthread)", r"^\./|\[[^\]]*(libc|libpthread|libm|ld-linux|vdso)[^\]]*\]$"),
    ("Rust alloc shims (__rust_alloc, RawVec grow, Box/Vec drop)", r"__rust_(alloc|dealloc|realloc)|__rdl_|alloc::raw_vec|RawVec|finish_grow|do_reserve_and_handle|grow_one|grow_amortized"),
    ("memcpy via Rust/core (copy_from_slice, extend_from_slice)", r"core::intrinsics::copy|copy_nonoverlapping|copy_from_slice|extend_from_slice|spec_extend"),
    ("mmdb lookups (maxminddb)", r"maxminddb"),
    ("CIDR list lookup", r"[Cc]idr"),
    ("regex / aho-corasick", r"regex|aho_corasick"),
    ("flowgate events (serde_json, click records, batching, channel)", r"serde_json|serde::|flowgate::events|ClickRecord|itoa|ryu|std::sync::mpmc|std::sync::mpsc"),
    ("flowgate decision + proxy adapter (identity, rules, UA cache, facts)", r"flowgate::"),
    ("pingora/http: HTTP/1 parse, header maps, serialization", r"/httparse-|/http-\d|/pingora-http-|pingora-core-[^/]*/src/protocols/http|httparse|pingora_http|pingora_core::protocols::http|RequestHeader|ResponseHeader|header::map|HeaderMap|HeaderName|HeaderValue|http::header|case_header|append_header|CaseMap|http::uri|Uri|pingora_header|StandardHeader|hash_elem|HdrName|http::method|http::status"),
    ("tokio runtime (scheduler, io driver, timers, wakers, channels)", r"/tokio-|/mio-|tokio::|mio::"),
    ("pingora: proxy state machine, pool, sessions, timeouts, metrics", r"pingora|/lru-|/prometheus-"),
    ("bytes / futures glue / Rust std+core generic", r"bytes::|futures|core::|std::|alloc::|<.*>"),
]


def family(name):
    for fam, rx in RULES:
        if re.search(rx, name):
            return fam
    return "other"


def crate(name):
    """'file:function [object]' -> where the code lives (crate, std library part, glibc, ...)"""
    f = name.split(":", 1)[0]
    m = re.search(r"index\.crates\.io-[^/]+/([A-Za-z0-9_-]+?)-\d+\.\d+", f)
    if m:
        return m.group(1)
    m = re.search(r"/rustc/[^/]+/library/([^/]+)/", f)
    if m:
        return "rust " + m.group(1)
    src = os.environ.get("FLOWGATE_SRC", "").rstrip("/") + "/"
    if src != "/" and f.startswith(src):
        return "flowgate " + f[len(src):]
    if f.startswith("./"):
        return "glibc"
    m = re.search(r"\[([^\]]+)\]$", name)
    return m.group(1).rsplit("/", 1)[-1] if m else f


def strip_obj(name):
    """drop the source file and the object: just the function"""
    name = re.sub(r" \[[^\]]*\]$", "", name)
    m = re.match(r"^(\?\?\?|[^:<>]*[/.][^:<>]*):(?!:)", name)  # "file:" prefix (idempotent)
    return name[m.end():] if m else name


def short(name, n=110):
    name = strip_obj(name)
    return name if len(name) <= n else name[: n - 1] + "…"


def main():
    small, large, reqs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    ts, cs = annotate(small, False)
    tl, cl = annotate(large, False)
    diff = collections.Counter({k: cl[k] - cs.get(k, 0) for k in cl})
    for k in cs:
        if k not in cl:
            diff[k] = -cs[k]
    per = (tl - ts) / reqs
    print(f"total Ir: small {ts:,}  large {tl:,}  -> {per:,.0f} Ir per request over {reqs:,} requests\n")
    print(f"### Top {top} functions by self Ir per request (large − small)\n")
    print("| # | self Ir / req | % | family | code in | function |")
    print("|---|---|---|---|---|---|")
    # one row per function: callgrind_annotate splits a function by source file (inlined code)
    merged, biggest = collections.Counter(), {}
    for k, v in diff.items():
        f = strip_obj(k)
        merged[f] += v
        if f not in biggest or v > diff[biggest[f]]:
            biggest[f] = k
    for i, (f, v) in enumerate(merged.most_common(top), 1):
        k = biggest[f]
        m = re.match(r"<?([a-z_][a-z0-9_]*)::", f)
        where = m.group(1) if m and m.group(1) not in ("core", "alloc", "std") else crate(k)
        print(f"| {i} | {v / reqs:,.0f} | {100 * v / (tl - ts):.1f} | {family(k).split(' (')[0]} | {where} | `{short(k)}` |")
    fams = collections.Counter()
    tops = collections.defaultdict(collections.Counter)
    for k, v in diff.items():
        f = family(k)
        fams[f] += v
        tops[f][strip_obj(k)] += v
    print("\n### Self Ir per request by family\n")
    print("| family | Ir / req | % | biggest functions (Ir/req) |")
    print("|---|---|---|---|")
    for f, v in fams.most_common():
        t = "; ".join(f"`{short(k, 70)}` {c / reqs:,.0f}" for k, c in tops[f].most_common(3))
        print(f"| {f} | {v / reqs:,.0f} | {100 * v / (tl - ts):.1f} | {t} |")
    print(f"| **total** | **{per:,.0f}** | 100 | |")
    _, inc = annotate(large, True)
    _, incs = annotate(small, True)
    print(f"\n### Top {top} inclusive (large − small, per request; thread/runtime/std frames left out; async poll frames nest, so these overlap)\n")
    print("| inclusive Ir / req | function |")
    print("|---|---|")
    idiff = collections.Counter()
    for k in inc:
        f = strip_obj(k)
        if re.match(r"<?(std|core|alloc)::|<?tokio::runtime|start_thread|clone3?$|0x|__rust|<T as pingora_core::apps::ServerApp>", f):
            continue  # thread / runtime / generic frames: ~100 % each
        idiff[f] = max(idiff[f], inc[k] - incs.get(k, 0))
    for k, v in idiff.most_common(top):
        print(f"| {v / reqs:,.0f} | `{short(k)}` |")


main()
