#!/usr/bin/env bash
# flowgate vs nginx doing the same filtering, on loopback, in interleaved rounds.
#   ./run.sh            setup (idempotent) -> build flowgate if FLOWGATE is unset -> start the
#                       landing nginx, the nginx gateway and one flowgate per scenario -> check
#                       that both decide alike -> warm-up -> REPS rounds (each round: every
#                       scenario on nginx, then on flowgate) -> report.py table.
# Knobs (env, defaults):
#   FLOWGATE=<unset: cargo build --release in the repo, target/release/flowgate>
#   REPS=5 DUR=10 WARM=3          rounds, seconds per wrk run, warm-up seconds per target
#                                 (REPS=0 WARM=0: only start everything and check the decisions)
#   THREADS=2 CONNS=64            wrk -t/-c (THREADS=1 CONNS=4: latency away from saturation)
#   WORKERS=2                     nginx worker_processes = flowgate threads (gateways only)
#   SCENARIOS="ceiling proxy filter_nolog filter302 gateway"
#   SKIP_SETUP=0   DATA=/tmp/peerdata   RUN=/tmp/peerrun   RESULTS=/tmp/peerresults
#   PORT_OFFSET=0  (added to every port: nginx 8080-8085, flowgate 9080-9085 + admin 9180-9185)
# Results: $RESULTS/<UTC stamp>/ runs.tsv (one row per target and round), summary.md, raw/.
# Stops only what it started (by PID). All traffic goes to 127.0.0.1.
set -euo pipefail
PEER="$(cd "$(dirname "$0")" && pwd)"
DATA="${DATA:-/tmp/peerdata}"; RUN="${RUN:-/tmp/peerrun}"
REPS="${REPS:-5}"; DUR="${DUR:-10}"; WARM="${WARM:-3}"; THREADS="${THREADS:-2}"; CONNS="${CONNS:-64}"
WORKERS="${WORKERS:-2}"; SKIP_SETUP="${SKIP_SETUP:-0}"
SCENARIOS="${SCENARIOS:-ceiling proxy filter_nolog filter302 gateway}"
source "$PEER/lib.sh"

[[ $SKIP_SETUP == 1 ]] || "$PEER/setup.sh"
need_inputs
flowgate_bin
OUT="${RESULTS:-/tmp/peerresults}/$(date -u +%Y%m%dT%H%M%SZ)"
HZ="$(getconf CLK_TCK)"
rm -rf "$RUN"; mkdir -p "$OUT/raw" "$RUN"
RUNS="$OUT/runs.tsv"
printf 'gateway\tscenario\trep\trps\tp50_us\tp90_us\tp99_us\tmax_us\terrors\tgw_cpu_pct\tlanding_cpu_pct\twrk_cpu_pct\tgw_rss_kb\tsys_idle_pct\n' > "$RUNS"
note() { echo "$*" | tee -a "$OUT/notes.txt"; }

# ---------------------------------------------------------------- processes (ours, by PID)
declare -A PID=()     # landing, nginx, fg_<scenario>
cleanup() {
  local n
  for n in "${!PID[@]}"; do
    if [[ $n == fg_* ]]; then stop_pid "${PID[$n]}" TERM 15 || true; else stop_pid "${PID[$n]}" QUIT 10 || true; fi
  done
  PID=()
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
start() {  # start NAME PORT CMD... (in the background, until PORT answers)
  local name=$1 port=$2; shift 2
  port_open "$port" && { echo "port $port busy; not starting $name (PORT_OFFSET?)" >&2; exit 1; }
  "$@" > "$RUN/logs/$name.out" 2>&1 &
  PID[$name]=$!
  wait_port "$port" "${PID[$name]}" 60 || { echo "$name did not open port $port" >&2; cat "$RUN/logs/$name.out" >&2; exit 1; }
  note "started $name (pid ${PID[$name]}) on :$port"
}
pids_of() { echo "$1"; ps -o pid= --ppid "$1" 2>/dev/null || true; }   # nginx master + workers
ticks_of() {  # utime+stime clock ticks of PID and its children (flowgate: one process)
  local t=0 p
  for p in $(pids_of "$1"); do
    [[ -r /proc/$p/stat ]] && t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
rss_of() { local s=0 p; for p in $(pids_of "$1"); do s=$((s + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$s"; }
idle_ticks() { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }

# ---------------------------------------------------------------- configs + checks
{
  echo "# peer bench $(basename "$OUT"): REPS=$REPS DUR=$DUR WARM=$WARM wrk -t$THREADS -c$CONNS, WORKERS=$WORKERS"
  echo "host: $(nproc) cpus, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$(nginx -v 2>&1); $(wrk -v 2>&1 | head -1)"
  echo "flowgate: $FLOWGATE ($("$FLOWGATE" --version 2>&1 | head -1)), sha256 $(sha256sum < "$FLOWGATE" | cut -c1-16)"
  echo "scenarios: $SCENARIOS; pool $POOL ($(wc -l < "$POOL") requests)"
} | tee "$OUT/env.txt"
LANDING_CONF=$(render_nginx landing landing.conf.in "$WORKERS")
NGX_CONF=$(render_nginx gw gateway.conf.in "$WORKERS")
for c in "$LANDING_CONF" "$NGX_CONF"; do nginx -q -t -e /dev/stderr -p "$RUN" -c "$c"; done
declare -A NPORT=() FPORT=() FCONF=()
for sc in $SCENARIOS; do
  read -r np fname <<< "$(scen_info "$sc")"
  NPORT[$sc]=$((np + PORT_OFFSET))
  FCONF[$sc]=$(render_flowgate "$fname" "$WORKERS")
  FPORT[$sc]=$(fg_port "${FCONF[$sc]}")
  "$FLOWGATE" check -c "${FCONF[$sc]}" > "$OUT/check.$sc.txt" 2>&1 \
    || { cat "$OUT/check.$sc.txt" >&2; echo "flowgate check failed for $sc" >&2; exit 1; }
done
cp "$LANDING_CONF" "$NGX_CONF" "${FCONF[@]}" "$OUT/"

start landing $((8081 + PORT_OFFSET)) nginx -e "$RUN/logs/landing.stderr.log" -p "$RUN" -c "$LANDING_CONF" -g 'daemon off;'
start nginx $((8080 + PORT_OFFSET)) nginx -e "$RUN/logs/gw.stderr.log" -p "$RUN" -c "$NGX_CONF" -g 'daemon off;'
for sc in $SCENARIOS; do start "fg_$sc" "${FPORT[$sc]}" "$FLOWGATE" run -c "${FCONF[$sc]}"; done

# ---------------------------------------------------------------- same decisions? (9 visitors)
if [[ $SCENARIOS == *filter302* ]]; then
  chrome="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
  route() {  # PORT IP UA -> offer|safe (host of the 302 Location); an empty UA sends none
    local ua=(-H "User-Agent:"); [[ -n $3 ]] && ua=(-A "$3")
    curl -s -m 5 -o /dev/null -w '%{redirect_url}' -H "X-Forwarded-For: $2" "${ua[@]}" "http://127.0.0.1:$1/lp/c1" \
      | sed -n 's|^https://\([a-z]*\)\..*|\1|p'
  }
  bad=0
  while IFS='|' read -r ip ua want; do
    a=$(route "${NPORT[filter302]}" "$ip" "$ua"); b=$(route "${FPORT[filter302]}" "$ip" "$ua")
    [[ $a == "$want" && $b == "$want" ]] || { bad=1; note "DECISION MISMATCH ip=$ip ua=${ua:0:40}: nginx=$a flowgate=$b want=$want"; }
  done <<EOF2
73.0.0.1|$chrome|offer
84.128.0.1|$chrome|offer
2a02:8108::1|$chrome|offer
1.2.3.4|$chrome|offer
73.0.0.1|Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)|safe
73.0.0.1|curl/8.5.0|safe
73.0.0.1||safe
3.5.140.2|$chrome|safe
152.53.0.122|$chrome|safe
EOF2
  ((bad)) || note "decisions: nginx and flowgate agree on the 9 sanity visitors"
fi

# ---------------------------------------------------------------- one wrk run
WRK=(--timeout 5s -s "$PEER/scripts/mix.lua")
bench_one() {  # bench_one GATEWAY SCENARIO REP PORT PID
  local gw=$1 sc=$2 rep=$3 port=$4 pid=$5 raw="$OUT/raw/$1.$2.$3.txt"
  [[ $gw == nginx ]] && : > "$RUN/logs/gw.click.json"   # keep the click log small
  local g0 l0 i0 t0 g1 l1 i1 t1
  g0=$(ticks_of "$pid"); l0=$(ticks_of "${PID[landing]}"); i0=$(idle_ticks); t0=$(now)
  timeout $((DUR + 30)) /usr/bin/time -f "WRKCPU %U %S" wrk "-t$THREADS" "-c$CONNS" "-d${DUR}s" --latency \
    "${WRK[@]}" "http://127.0.0.1:$port/" -- "$POOL" > "$raw" 2>&1 || true
  t1=$(now); g1=$(ticks_of "$pid"); l1=$(ticks_of "${PID[landing]}"); i1=$(idle_ticks)
  local res; res=$(grep '^RESULT' "$raw" || true)
  [[ -n $res ]] || { echo "wrk failed for $gw $sc rep $rep:" >&2; cat "$raw" >&2; return 0; }
  local -A kv=(); local x
  for x in ${res#RESULT }; do kv[${x%%=*}]=${x#*=}; done
  local wall wc pg pl pw idle
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  wc=$(awk '/^WRKCPU/{print $2+$3}' "$raw")
  pg=$(awk -v d=$((g1 - g0)) -v hz="$HZ" -v w="$wall" 'BEGIN{printf "%.0f", 100*d/hz/w}')
  pl=$(awk -v d=$((l1 - l0)) -v hz="$HZ" -v w="$wall" 'BEGIN{printf "%.0f", 100*d/hz/w}')
  pw=$(awk -v c="${wc:-0}" -v w="$wall" 'BEGIN{printf "%.0f", 100*c/w}')
  idle=$(awk -v a="$i0" -v b="$i1" 'BEGIN{split(a,x," "); split(b,y," "); t=y[2]-x[2]; printf "%.0f", (t > 0 ? 100*(y[1]-x[1])/t : 0)}')
  local errs=$(( kv[err_connect] + kv[err_read] + kv[err_write] + kv[err_status] + kv[err_timeout] ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$gw" "$sc" "$rep" "${kv[rps]}" "${kv[p50_us]}" \
    "${kv[p90_us]}" "${kv[p99_us]}" "${kv[max_us]}" "$errs" "$pg" "$pl" "$pw" "$(rss_of "$pid")" "$idle" >> "$RUNS"
  printf '  %-8s %-12s rep %s: %9s req/s  p50 %6s us  p99 %6s us  err %s  cpu%% gw %s landing %s wrk %s idle %s\n' \
    "$gw" "$sc" "$rep" "${kv[rps]}" "${kv[p50_us]}" "${kv[p99_us]}" "$errs" "$pg" "$pl" "$pw" "$idle"
}

# ---------------------------------------------------------------- warm-up + interleaved rounds
targets=()   # "gateway scenario port pid"
for sc in $SCENARIOS; do targets+=("nginx $sc ${NPORT[$sc]} ${PID[nginx]}"); done
for sc in $SCENARIOS; do targets+=("flowgate $sc ${FPORT[$sc]} ${PID[fg_$sc]}"); done
if ((WARM > 0)); then
  echo "== warm-up ${WARM}s per target"
  for t in "${targets[@]}"; do
    read -r gw sc port pid <<< "$t"
    timeout $((WARM + 20)) wrk "-t$THREADS" "-c$CONNS" "-d${WARM}s" "${WRK[@]}" "http://127.0.0.1:$port/" -- "$POOL" > /dev/null 2>&1 || true
  done
fi
for rep in $(seq 1 "$REPS"); do
  echo "== round $rep/$REPS"
  for t in "${targets[@]}"; do read -r gw sc port pid <<< "$t"; bench_one "$gw" "$sc" "$rep" "$port" "$pid"; done
done

# ---------------------------------------------------------------- events, memory, stop
sleep 1.5   # events are written in batches (max_wait 1s)
for sc in $SCENARIOS; do
  a=$(fg_admin "${FCONF[$sc]}")
  m=$(curl -s -m 5 "http://127.0.0.1:$a/metrics" | awk '/^flowgate_requests_total/{r+=$NF} /^flowgate_events_total.*written/{e+=$NF} END{printf "requests_total %d, events written %d", r, e}' || true)
  note "flowgate $sc: $m, RSS $(rss_of "${PID[fg_$sc]}") kB"
done
note "nginx gateway RSS (master + workers) $(rss_of "${PID[nginx]}") kB"
cleanup
rm -rf "$RUN/events" "$RUN/logs/gw.click.json"
((REPS > 0)) && python3 "$PEER/scripts/report.py" "$OUT" | tee "$OUT/summary.md"
echo "results: $OUT"
