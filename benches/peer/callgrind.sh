#!/usr/bin/env bash
# Instructions per request (callgrind Ir, user space, all threads) of nginx and flowgate doing
# the peer bench's work: the repeatable figure (two reps agree within ~1 %), unlike wall-clock
# req/s on a shared machine. Read it beside run.sh, not instead of it: the kernel's TCP work is
# not in it, and valgrind counts every byte-copy iteration.
#
# Per rep, scenario and gateway: the gateway runs under `valgrind --tool=callgrind` with ONE
# worker (nginx: worker_processes 1 with `master_process off`, so the one process is the worker;
# flowgate: threads: 1), twice: once for SMALL requests and once for N, each after one probe
# request that waits until the gateway answers. scripts/client.py (not under valgrind) sends
# exactly that many requests from the pool over CONNS keep-alive connections; the landing nginx
# is not under valgrind. Then SIGQUIT (nginx) / SIGTERM (flowgate) so callgrind writes its file:
#   Ir per request = (Ir(N) - Ir(SMALL)) / (N - SMALL)
# (start-up, probe, shutdown and the first SMALL requests, which fill flowgate's UA cache,
# cancel out). Prints a table (scripts/cg_table.py) and, for PROFILE, the top functions and cost
# families per request (scripts/cg_profile.py).
#
# Knobs (env, defaults):
#   FLOWGATE=<unset: cargo build --release in the repo>   FLOWGATE_SRC=<repo>/src (profile labels)
#   SCENARIOS="proxy gateway ceiling filter302"   (also filter_nolog)   GATEWAYS="nginx flowgate"
#   N=20000 SMALL=1000 REPS=2 CONNS=4   PROFILE="proxy:flowgate" ("" = none) TOP=15
#   SKIP_SETUP=0 DATA=/tmp/peerdata CG=/tmp/cg RESULTS=$CG/results PORT_OFFSET=20000
#   START_WAIT=600 STOP_WAIT=300 REQ_TIMEOUT=120 (s)   VG_OPTS=""  extra valgrind options
# Exit status 0 only if every measurement ran, every request got a 2xx/3xx, every callgrind
# file was written and nginx and flowgate made the same decisions (gateway, filter302).
set -euo pipefail
PEER="$(cd "$(dirname "$0")" && pwd)"
DATA="${DATA:-/tmp/peerdata}"; CG="${CG:-/tmp/cg}"; RUN="$CG/run"
SCENARIOS="${SCENARIOS:-proxy gateway ceiling filter302}"; GATEWAYS="${GATEWAYS:-nginx flowgate}"
N="${N:-20000}"; SMALL="${SMALL:-1000}"; REPS="${REPS:-2}"; CONNS="${CONNS:-4}"
PORT_OFFSET="${PORT_OFFSET:-20000}"; SKIP_SETUP="${SKIP_SETUP:-0}"
START_WAIT="${START_WAIT:-600}"; STOP_WAIT="${STOP_WAIT:-300}"; REQ_TIMEOUT="${REQ_TIMEOUT:-120}"
PROFILE="${PROFILE-proxy:flowgate}"; TOP="${TOP:-15}"; VG_OPTS="${VG_OPTS:-}"
FLOWGATE_SRC="${FLOWGATE_SRC:-$(cd "$PEER/../.." && pwd)/src}"
source "$PEER/lib.sh"

(( N > SMALL )) || { echo "N ($N) must be larger than SMALL ($SMALL)" >&2; exit 2; }
[[ $SKIP_SETUP == 1 ]] || "$PEER/setup.sh" valgrind
need_inputs
flowgate_bin
OUT="${RESULTS:-$CG/results}/$(date -u +%Y%m%dT%H%M%SZ)"
rm -rf "$RUN"; mkdir -p "$OUT" "$RUN"
RUNS="$OUT/runs.tsv"
printf 'rep\tscenario\tgateway\tn\tIr\tstart_s\tload_s\tstop_s\twall_s\tclient\tdecisions\n' > "$RUNS"
FAILS=0
fail() { echo "FAIL: $*" | tee -a "$OUT/failures.txt" >&2; FAILS=$((FAILS + 1)); }

LANDING_PID=""; GW_PID=""
cleanup() {
  stop_pid "$GW_PID" KILL 5 || true
  stop_pid "$LANDING_PID" QUIT 10 || true
  GW_PID=""; LANDING_PID=""
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- configs
LANDING_CONF=$(render_nginx landing landing.conf.in 1)
NGX_CONF=$(render_nginx cgw gateway.conf.in 1)
nginx -q -t -e /dev/stderr -p "$RUN" -c "$LANDING_CONF"
nginx -q -t -e /dev/stderr -p "$RUN" -c "$NGX_CONF"
LANDING_PORT=$((8081 + PORT_OFFSET))
declare -A FGCONF=() FGPORT=() NGPORT=()
for sc in $SCENARIOS; do
  read -r np fgname <<< "$(scen_info "$sc")"
  NGPORT[$sc]=$((np + PORT_OFFSET))
  FGCONF[$sc]=$(render_flowgate "$fgname" 1)
  FGPORT[$sc]=$(fg_port "${FGCONF[$sc]}")
  if [[ $GATEWAYS == *flowgate* ]]; then
    "$FLOWGATE" check -c "${FGCONF[$sc]}" > "$OUT/check.$sc.txt" 2>&1 \
      || { cat "$OUT/check.$sc.txt" >&2; echo "flowgate check failed for $sc" >&2; exit 1; }
  fi
done
for p in 8080 8081 8082 8083 8084 8085 9080 9082 9083 9084 9085 9180 9182 9183 9184 9185; do
  port_open $((p + PORT_OFFSET)) && { echo "port $((p + PORT_OFFSET)) busy; set PORT_OFFSET" >&2; exit 1; }
done
{
  echo "# callgrind bench $(basename "$OUT")"
  echo "host: $(nproc) cpus, kernel $(uname -r), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  echo "$(valgrind --version); $(nginx -v 2>&1)"
  echo "flowgate: $FLOWGATE ($("$FLOWGATE" --version 2>&1 | head -1)), sha256 $(sha256sum < "$FLOWGATE" | cut -c1-16)"
  echo "N=$N SMALL=$SMALL REPS=$REPS CONNS=$CONNS SCENARIOS=\"$SCENARIOS\" GATEWAYS=\"$GATEWAYS\" pool $POOL ($(wc -l < "$POOL") lines)"
} | tee "$OUT/env.txt"
cp "$NGX_CONF" "$LANDING_CONF" "${FGCONF[@]}" "$OUT/"

# ---------------------------------------------------------------- landing (not under valgrind)
nginx -e "$RUN/logs/landing.stderr.log" -p "$RUN" -c "$LANDING_CONF" -g 'daemon off;' &
LANDING_PID=$!
wait_port "$LANDING_PORT" "$LANDING_PID" 10 || { echo "landing did not open $LANDING_PORT" >&2; exit 1; }

# ---------------------------------------------------------------- one measurement
events_dir() { fg_events_dir "${FGCONF[$1]}"; }
count_decisions() {  # GATEWAY SCENARIO -> "offer=X safe=Y lines=Z" from the click log / events
  local files=() d
  if [[ $1 == nginx ]]; then
    [[ $2 =~ ^(gateway|filter302)$ ]] || { echo "-"; return; }
    files=("$RUN/logs/cgw.click.json")
  else
    d=$(events_dir "$2"); [[ -n $d ]] || { echo "-"; return; }
    shopt -s nullglob; files=("$d"/*.ndjson); shopt -u nullglob
  fi
  ((${#files[@]})) || { echo "offer=0 safe=0 lines=0"; return; }
  cat "${files[@]}" | awk '/"route":"offer"/{o++} /"route":"safe"/{s++} {l++} END{printf "offer=%d safe=%d lines=%d", o, s, l}'
}
declare -A DEC=()
measure() {  # measure REP SCENARIO GATEWAY COUNT
  local rep=$1 sc=$2 gw=$3 n=$4 port sig cmd=() d
  local tag="$sc.$gw.n$n.r$rep" cgf="$OUT/callgrind.$sc.$gw.n$n.r$rep.out"
  local vg=(valgrind --tool=callgrind "--callgrind-out-file=$cgf" "--log-file=$OUT/valgrind.$tag.log")
  if [[ $gw == nginx ]]; then
    sig=QUIT; port=${NGPORT[$sc]}
    cmd=("${vg[@]}" --smc-check=all-non-file $VG_OPTS nginx -e "$RUN/logs/cgw.stderr.log" -p "$RUN" -c "$NGX_CONF" -g 'daemon off; master_process off;')
  else
    sig=TERM; port=${FGPORT[$sc]}
    cmd=("${vg[@]}" $VG_OPTS "$FLOWGATE" run -c "${FGCONF[$sc]}")
  fi
  port_open "$port" && { fail "$tag: port $port busy"; return 0; }
  : > "$RUN/logs/cgw.click.json"; d=$(events_dir "$sc"); [[ -n $d ]] && rm -rf "$d"
  rm -f "$cgf"
  local t0 t1 t2 t3 crc=0 src=0
  t0=$(now)
  RUST_LOG="${RUST_LOG:-warn}" "${cmd[@]}" > "$OUT/gw.$tag.log" 2>&1 &
  GW_PID=$!
  python3 "$PEER/scripts/client.py" --port "$port" --pool "$POOL" -n 0 --wait "$START_WAIT" \
    --timeout "$REQ_TIMEOUT" > "$OUT/client.$tag.txt" 2>&1 || crc=$?
  t1=$(now)
  if ((crc == 0 && n > 0)); then
    timeout $((n * 2 + 600)) python3 "$PEER/scripts/client.py" --port "$port" --pool "$POOL" -n "$n" -c "$CONNS" \
      --timeout "$REQ_TIMEOUT" >> "$OUT/client.$tag.txt" 2>&1 || crc=$?
  fi
  t2=$(now)
  stop_pid "$GW_PID" "$sig" "$STOP_WAIT" || src=$?
  GW_PID=""
  t3=$(now)
  local cl ir="" dec
  cl=$(grep '^CLIENT' "$OUT/client.$tag.txt" | tail -1 | sed 's/^CLIENT //' || true)
  [[ -s $cgf ]] && ir=$(awk '/^(summary|totals):/{print $2; exit}' "$cgf")
  dec=$(count_decisions "$gw" "$sc")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$sc" "$gw" "$n" "${ir:-NA}" "$(dt "$t0" "$t1")" \
    "$(dt "$t1" "$t2")" "$(dt "$t2" "$t3")" "$(dt "$t0" "$t3")" "$cl" "$dec" >> "$RUNS"
  printf '  %-10s %-8s n=%-6s rep %s: Ir %15s  start %6ss load %6ss stop %5ss  %s\n' "$sc" "$gw" "$n" "$rep" \
    "${ir:-NA}" "$(dt "$t0" "$t1")" "$(dt "$t1" "$t2")" "$(dt "$t2" "$t3")" "$dec"
  ((crc == 0)) || fail "$tag: client failed (rc $crc): $(tail -3 "$OUT/client.$tag.txt" | tr '\n' ' ')"
  ((src == 0)) || fail "$tag: gateway did not exit within ${STOP_WAIT}s of SIG$sig (killed)"
  [[ -n $ir ]] || { fail "$tag: no callgrind totals in $cgf"; tail -5 "$OUT/valgrind.$tag.log" >&2 || true; }
  DEC[$tag]=$dec
}

for rep in $(seq 1 "$REPS"); do
  echo "== rep $rep"
  for sc in $SCENARIOS; do
    for gw in $GATEWAYS; do
      for n in "$SMALL" "$N"; do measure "$rep" "$sc" "$gw" "$n"; done
    done
  done
done
cleanup

# ---------------------------------------------------------------- same decisions?
for sc in $SCENARIOS; do
  [[ $sc =~ ^(gateway|filter302)$ && $GATEWAYS == *nginx* && $GATEWAYS == *flowgate* ]] || continue
  for rep in $(seq 1 "$REPS"); do
    a=${DEC[$sc.nginx.n$N.r$rep]:-}; b=${DEC[$sc.flowgate.n$N.r$rep]:-}
    [[ -n $a && -n $b ]] || continue
    if [[ ${a% lines=*} != "${b% lines=*}" ]]; then fail "$sc rep $rep: decisions differ: nginx $a, flowgate $b"
    else echo "decisions $sc rep $rep: nginx $a | flowgate $b (agree)" | tee -a "$OUT/decisions.txt"; fi
  done
done

python3 "$PEER/scripts/cg_table.py" "$RUNS" "$N" "$SMALL" "$SCENARIOS" "$GATEWAYS" > "$OUT/table.md"
cat "$OUT/table.md"
for pg in $PROFILE; do
  sc=${pg%%:*}; gw=${pg#*:}
  s="$OUT/callgrind.$sc.$gw.n$SMALL.r1.out"; l="$OUT/callgrind.$sc.$gw.n$N.r1.out"
  [[ -s $s && -s $l ]] || { [[ $SCENARIOS == *$sc* && $GATEWAYS == *$gw* ]] && fail "profile $pg: callgrind files missing"; continue; }
  if FLOWGATE_SRC="$FLOWGATE_SRC" python3 "$PEER/scripts/cg_profile.py" "$s" "$l" $((N - SMALL)) "$TOP" \
       > "$OUT/profile-$sc-$gw.md" 2> "$OUT/profile-$sc-$gw.err"; then
    echo; echo "## $gw $sc: per-request profile (rep 1)"; cat "$OUT/profile-$sc-$gw.md"
  else
    fail "profile $pg: $(tail -2 "$OUT/profile-$sc-$gw.err")"
  fi
done
echo
echo "results: $OUT  (runs.tsv, table.md, profile-*.md, callgrind.*.out; total ${SECONDS}s)"
if ((FAILS)); then echo "$FAILS failure(s): see $OUT/failures.txt" >&2; exit 1; fi
