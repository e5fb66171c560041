# Shared by run.sh and callgrind.sh (sourced). Expects PEER (this folder), DATA, RUN set.
# Every process is started by the calling script and stopped by its PID.
COUNTRY_DB="$DATA/flowgate/country.mmdb"   # the same bytes for nginx and flowgate
POOL="$DATA/gen/reqpool.tsv"
PORT_OFFSET="${PORT_OFFSET:-0}"

need_inputs() {
  local f
  for f in "$COUNTRY_DB" "$DATA/asn.mmdb" "$POOL" "$DATA/gen/cidr_50000.geo" "$DATA/flowgate/cidr_50000.txt"; do
    [[ -s $f ]] || { echo "missing $f: run $PEER/setup.sh" >&2; exit 2; }
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

# wait_port PORT PID SECONDS: until PORT answers (0), PID died or time is up (1)
wait_port() {
  local t
  for ((t = 0; t < $3 * 10; t++)); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  port_open "$1"
}

# stop_pid PID SIGNAL WAIT_S: signal, wait, SIGKILL if still there (then returns 1)
stop_pid() {
  local pid=$1 t
  [[ -n $pid ]] || return 0
  kill "-$2" "$pid" 2>/dev/null || true
  for ((t = 0; t < $3 * 10; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
  fi
  wait "$pid" 2>/dev/null || true
}

# bench ports 127.0.0.1:P (nginx 808x, flowgate 908x/918x) -> P + PORT_OFFSET
remap_ports() {
  perl -pe 's/127\.0\.0\.1:(808\d|90[89]\d|91[89]\d)\b/"127.0.0.1:".($1+'"$PORT_OFFSET"')/ge'
}

# render_nginx NAME TEMPLATE WORKERS -> path of $RUN/conf/NAME.conf
render_nginx() {
  local conf="$RUN/conf/$1.conf"
  mkdir -p "$RUN"/{conf,logs,tmp,html}
  cp "$PEER"/html/*.html "$RUN/html/"
  sed -e "s|@RUN@|$RUN|g" -e "s|@DATA@|$DATA|g" -e "s|@PEER@|$PEER|g" -e "s|@NAME@|$1|g" \
      -e "s|@CIDR_FILE@|$DATA/gen/cidr_50000.geo|g" -e "s|@COUNTRY_DB@|$COUNTRY_DB|g" \
      -e "s|@WORKERS@|$3|g" "$PEER/conf/$2" | remap_ports > "$conf"
  echo "$conf"
}

# render_flowgate NAME THREADS -> path of $RUN/fg/NAME.yaml: flowgate/NAME.yaml with DATA, RUN,
# threads and ports applied and the rules copied (their upstream port shifted too)
render_flowgate() {
  local src="$PEER/flowgate/$1.yaml" dst="$RUN/fg/$1.yaml"
  [[ -s $src ]] || { echo "no flowgate config $src" >&2; return 1; }
  if [[ ! -d $RUN/fg/rules ]]; then
    mkdir -p "$RUN/fg"
    cp -r "$PEER/flowgate/rules" "$RUN/fg/rules"
    find "$RUN/fg/rules" -name '*.yaml' -exec perl -pi -e 's/127\.0\.0\.1:8081\b/"127.0.0.1:".(8081+'"$PORT_OFFSET"')/ge' {} +
  fi
  remap_ports < "$src" | sed -E -e "s/^threads: [0-9]+/threads: $2/" \
      -e "s|/tmp/peerdata/|$DATA/|g" -e "s|/tmp/peerrun/|$RUN/|g" > "$dst"
  grep -q "^threads: $2" "$dst" || { echo "$dst: no threads: line" >&2; return 1; }
  echo "$dst"
}
fg_port() { sed -n 's/^listen: \["127.0.0.1:\([0-9]*\)"\]/\1/p' "$1"; }
fg_admin() { sed -n 's/^admin: 127.0.0.1:\([0-9]*\)/\1/p' "$1"; }
fg_events_dir() { sed -n 's/^  file: { dir: \(.*\) }$/\1/p' "$1"; }

# scenario -> "nginx_port flowgate_config" (ports before PORT_OFFSET)
scen_info() {
  case $1 in
    ceiling)      echo "8082 ceiling" ;;
    proxy)        echo "8084 proxy" ;;
    filter_nolog) echo "8085 filter-nolog" ;;
    filter302)    echo "8083 filter302" ;;
    gateway)      echo "8080 gateway" ;;
    *) echo "unknown scenario $1 (ceiling proxy filter_nolog filter302 gateway)" >&2; return 1 ;;
  esac
}

# the FLOWGATE binary: given, or built from the repository this folder lives in
flowgate_bin() {
  if [[ -z ${FLOWGATE:-} ]]; then
    local repo; repo="$(cd "$PEER/../.." && pwd)"
    echo "FLOWGATE unset: cargo build --release in $repo" >&2
    (cd "$repo" && cargo build --release >&2)
    FLOWGATE="${CARGO_TARGET_DIR:-$repo/target}/release/flowgate"
  fi
  [[ -x $FLOWGATE ]] || { echo "flowgate binary $FLOWGATE not executable" >&2; exit 2; }
  FLOWGATE="$(cd "$(dirname "$FLOWGATE")" && pwd)/$(basename "$FLOWGATE")"
}
