#!/usr/bin/env bash
# Context switches and syscalls per request (`perf stat`, software events and the
# raw_syscalls tracepoint: they work where hardware counters do not), for the nginx gateway
# and flowgate on the gateway and proxy scenarios. Run after run.sh, which leaves the rendered
# configs in $RUN. One target at a time: start, warm up, `perf stat -p` for SECS under
# `wrk -t2 -c64`, requests counted by wrk over the same window, stop.
#
#   benches/peer/perfstat.sh            # FLOWGATE, RUN=/tmp/peerrun, SECS=5
set -euo pipefail
PEER="$(cd "$(dirname "$0")" && pwd)"
RUN="${RUN:-/tmp/peerrun}"
DATA="${DATA:-/tmp/peerdata}"
SECS="${SECS:-5}"
FLOWGATE="${FLOWGATE:-$PEER/../../target/release/flowgate}"
# shellcheck source=lib.sh
. "$PEER/lib.sh"
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
[[ -f $RUN/conf/gw.conf && -f $RUN/fg/gateway.yaml ]] || { echo "no rendered configs in $RUN: run run.sh first" >&2; exit 2; }

pids=()
cleanup() { for p in "${pids[@]}"; do stop_pid "$p" TERM 10 || true; done; }
trap cleanup EXIT

nginx -e "$RUN/logs/landing.stderr.log" -p "$RUN" -c "$RUN/conf/landing.conf" -g 'daemon off;' &
pids+=($!)
wait_port 8081 "$!" 10

# measure NAME PORT STOPSIG CMD...: CMD runs under `perf stat` (which follows its threads and
# children), gets SECS of wrk, is stopped; its whole life is counted, start-up included (a
# few thousand syscalls against hundreds of thousands of requests).
measure() {
  local name=$1 port=$2 sig=$3
  shift 3
  local out="$RUN/tmp/perf.${name// /_}"
  perf stat -x, -o "$out" -e context-switches,raw_syscalls:sys_enter -- "$@" > "$RUN/logs/perfstat.log" 2>&1 &
  local p=$!
  pids+=("$p")
  wait_port "$port" "$p" 30
  wrk -t2 -c64 -d"${SECS}s" -s "$PEER/scripts/mix.lua" "http://127.0.0.1:$port/" -- "$POOL" > "$out.wrk" 2>&1
  local target
  target=$(pgrep -P "$p" | head -1)
  kill "-$sig" "$target" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  local n rps cs sc
  n=$(awk '/requests in/{print $1}' "$out.wrk")
  rps=$(awk '/Requests\/sec/{print $2}' "$out.wrk")
  cs=$(awk -F, '/context-switches/{print $1}' "$out")
  sc=$(awk -F, '/raw_syscalls/{print $1}' "$out")
  awk -v n="$name" -v r="$rps" -v q="$n" -v c="$cs" -v s="$sc" \
    'BEGIN{printf "| %s | %.0f | %.2f | %.2f |\n", n, r, c/q, s/q}'
}

echo "| target (wrk -t2 -c64, ${SECS} s) | req/s | context switches / req | syscalls / req |"
echo "|---|---|---|---|"
for sc in gateway:8080 proxy:8084; do
  measure "nginx ${sc%%:*}" "${sc##*:}" QUIT \
    nginx -e "$RUN/logs/gw.stderr.log" -p "$RUN" -c "$RUN/conf/gw.conf" -g 'daemon off;'
done
for sc in gateway proxy; do
  port=$(awk -F'"' '/listen:/{print $2; exit}' "$RUN/fg/$sc.yaml" | sed 's/.*://')
  measure "flowgate $sc" "$port" TERM "$FLOWGATE" run -c "$RUN/fg/$sc.yaml"
done
