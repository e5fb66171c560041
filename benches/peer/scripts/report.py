#!/usr/bin/env python3
"""The table of a run.sh results folder: flowgate vs nginx per scenario (markdown on stdout).

usage: report.py RESULTS_DIR
Per scenario, medians over the rounds: req/s of each gateway; the per-round ratio
flowgate ÷ nginx (same scenario, same round), median (min-max); requests per gateway CPU-second
(req/s ÷ gateway CPU, landing not included) and their ratio; p50/p99 latency; gateway CPU %.
"""
import csv
import os
import statistics as st
import sys

out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "runs.tsv")), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault((r["gateway"], r["scenario"]), {})[int(r["rep"])] = r
scens = list(dict.fromkeys(r["scenario"] for r in rows))
if not rows:
    sys.exit(f"{out}: no measurements in runs.tsv")


def med(rs, k):
    return st.median(float(r[k]) for r in rs)


def per_cpu_s(r):
    c = float(r["gw_cpu_pct"])
    return float(r["rps"]) / (c / 100) if c > 0 else float("nan")


def mmm(xs, fmt):
    return f"{fmt.format(st.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


print(f"# flowgate vs nginx: {os.path.basename(out.rstrip('/'))}\n")
if os.path.exists(os.path.join(out, "env.txt")):
    print("".join("    " + l for l in open(os.path.join(out, "env.txt"))))
print("| scenario | nginx req/s | flowgate req/s | **flowgate ÷ nginx** per round, med (min-max) "
      "| req per gw CPU-s nginx / flowgate (ratio) | p50 ms nginx / flowgate | p99 ms nginx / flowgate "
      "| gw CPU % nginx / flowgate | errors nginx / flowgate |")
print("|---|---|---|---|---|---|---|---|---|")
for sc in scens:
    n, f = by.get(("nginx", sc), {}), by.get(("flowgate", sc), {})
    reps = sorted(set(n) & set(f))
    if not reps:
        continue
    N, F = [n[k] for k in reps], [f[k] for k in reps]
    ratio = [float(b["rps"]) / float(a["rps"]) for a, b in zip(N, F)]
    en, ef = st.median(per_cpu_s(r) for r in N), st.median(per_cpu_s(r) for r in F)
    errs = lambda R: sum(int(r["errors"]) for r in R)
    print(f"| {sc} | {med(N, 'rps'):,.0f} | {med(F, 'rps'):,.0f} | **{mmm(ratio, '{:.2f}')}** "
          f"| {en:,.0f} / {ef:,.0f} ({ef / en:.2f}) "
          f"| {med(N, 'p50_us') / 1000:.2f} / {med(F, 'p50_us') / 1000:.2f} "
          f"| {med(N, 'p99_us') / 1000:.2f} / {med(F, 'p99_us') / 1000:.2f} "
          f"| {med(N, 'gw_cpu_pct'):.0f} / {med(F, 'gw_cpu_pct'):.0f} | {errs(N)} / {errs(F)} |")

print("\nPer round, req/s nginx / flowgate (machine idle % during the flowgate run):\n")
print("| round | " + " | ".join(scens) + " |")
print("|---|" + "---|" * len(scens))
for rep in sorted({int(r["rep"]) for r in rows}):
    cells = []
    for sc in scens:
        a, b = by.get(("nginx", sc), {}).get(rep), by.get(("flowgate", sc), {}).get(rep)
        cells.append(f"{float(a['rps']):,.0f} / {float(b['rps']):,.0f} ({b['sys_idle_pct']} %)" if a and b else "-")
    print(f"| {rep} | " + " | ".join(cells) + " |")
