#!/usr/bin/env python3
"""callgrind.sh's table: instructions per request per scenario and gateway (markdown).

usage: cg_table.py RUNS.tsv N SMALL "SCENARIOS" "GATEWAYS"
Ir per request = (Ir(N) - Ir(SMALL)) / (N - SMALL), per rep; the mean over reps is printed in
bold with the reps and their spread, then the ratio of the second gateway to the first.
"""
import csv
import statistics
import sys

runs, N, S = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
scens, gws = sys.argv[4].split(), sys.argv[5].split()
ir, wall = {}, {}
for r in csv.DictReader(open(runs), delimiter="\t"):
    k = (r["scenario"], r["gateway"], int(r["n"]), int(r["rep"]))
    ir[k] = int(r["Ir"]) if r["Ir"].isdigit() else None
    wall[k] = float(r["wall_s"])
reps = sorted({k[3] for k in ir})


def per_req(sc, gw):
    v = [(ir[(sc, gw, N, rep)] - ir[(sc, gw, S, rep)]) / (N - S) for rep in reps
         if ir.get((sc, gw, S, rep)) and ir.get((sc, gw, N, rep))]
    return v


print(f"Instructions (callgrind Ir, user space, all threads) per request = (Ir(N={N}) - Ir(N={S})) / {N - S}\n")
hdr = "| scenario |" + "".join(f" {g} Ir/req (reps; spread) |" for g in gws)
if len(gws) == 2:
    hdr += f" **{gws[1]} ÷ {gws[0]}** |"
hdr += "".join(f" {g} wall s small ; N |" for g in gws)
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
for sc in scens:
    row, means = f"| {sc} |", []
    for g in gws:
        v = per_req(sc, g)
        if v:
            m = statistics.mean(v)
            means.append(m)
            spread = 100 * (max(v) - min(v)) / m if m else 0
            row += f" **{m:,.0f}** ({' / '.join(f'{x:,.0f}' for x in v)}; {spread:.2f} %) |"
        else:
            means.append(None)
            row += " NA |"
    if len(gws) == 2:
        row += f" **{means[1] / means[0]:.2f}** |" if all(means) else " NA |"
    for g in gws:
        a = [wall[(sc, g, S, rep)] for rep in reps if (sc, g, S, rep) in wall]
        b = [wall[(sc, g, N, rep)] for rep in reps if (sc, g, N, rep) in wall]
        row += f" {'/'.join(f'{x:.0f}' for x in a)} ; {'/'.join(f'{x:.0f}' for x in b)} |"
    print(row)
