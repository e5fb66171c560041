#!/usr/bin/env bash
# Idempotent setup of the peer bench (Debian 12). Every step is skipped when its output exists.
#   1. apt: nginx + geoip2 module, wrk, python3-venv, curl (+ npm if missing, + any package
#      named on the command line: callgrind.sh passes valgrind)
#   2. npm tarballs of @ip-location-db (data only: `npm pack`, no JS is run)
#   3. venv with mmdb-writer; asn.mmdb built from the ASN CSV (npm has no ASN .mmdb any more)
#   4. CIDR lists, hosting-ASN map, request pool (scripts/gen_data.py, seed 42)
#   5. flowgate's copies of the inputs (scripts/make_inputs.py)
# Writes only under $DATA (default /tmp/peerdata). usage: setup.sh [EXTRA_APT_PACKAGE...]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="${DATA:-/tmp/peerdata}"
IPDB_VER="${IPDB_VER:-2.3.2026061719}"   # @ip-location-db/* version of all results so far
PKGS=(geo-whois-asn-country-mmdb asn)
SUDO=""; [[ $EUID -eq 0 ]] || SUDO=sudo

mkdir -p "$DATA"
cd "$DATA"

# ---- 1. Debian packages
need=()
for p in nginx libnginx-mod-http-geoip2 wrk python3-venv curl "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  echo "apt: installing ${need[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

# ---- 2. npm tarballs
for p in "${PKGS[@]}"; do
  tgz="ip-location-db-$p-$IPDB_VER.tgz" dir="ip-location-db-$p-$IPDB_VER"
  if [[ ! -f $tgz ]]; then
    echo "npm pack @ip-location-db/$p@$IPDB_VER"
    timeout 300 npm pack --silent --ignore-scripts "@ip-location-db/$p@$IPDB_VER" >/dev/null
  fi
  [[ -d $dir/package ]] || { mkdir -p "$dir"; tar -xzf "$tgz" -C "$dir"; }
done
ln -sfn "ip-location-db-geo-whois-asn-country-mmdb-$IPDB_VER/package/geo-whois-asn-country.mmdb" country.mmdb
ASN_CSV_DIR="$DATA/ip-location-db-asn-$IPDB_VER/package"

# ---- 3. venv + asn.mmdb (IPv6 tree with IPv4 in ::/96, GeoLite2-ASN field names)
if ! venv/bin/python -c 'import mmdb_writer, netaddr' 2>/dev/null; then
  python3 -m venv venv
  timeout 600 venv/bin/pip install -q mmdb-writer==0.2.7 netaddr==1.3.0
fi
if [[ ! -s asn.mmdb ]]; then
  echo "building asn.mmdb (~1-2 min, ~0.8 GB RAM)"
  timeout 1800 venv/bin/python "$HERE/scripts/build_asn_mmdb.py" asn.mmdb.tmp \
    "$ASN_CSV_DIR/asn-ipv4.csv" "$ASN_CSV_DIR/asn-ipv6.csv"
  mv asn.mmdb.tmp asn.mmdb
fi

# ---- 4. CIDR lists, ASN map, request pool
if [[ ! -s gen/reqpool.tsv || ! -s gen/cidr_50000.csv || ! -s gen/asn_hosting.map ]]; then
  timeout 900 venv/bin/python "$HERE/scripts/gen_data.py" "$ASN_CSV_DIR" "$DATA/gen"
fi

# ---- 5. flowgate's inputs (fixed country.mmdb copy, plain CIDR list)
if [[ ! -s flowgate/country.mmdb || ! -s flowgate/cidr_50000.txt || gen/cidr_50000.csv -nt flowgate/cidr_50000.txt ]]; then
  python3 "$HERE/scripts/make_inputs.py" "$DATA"
fi

# ---- manifest
{
  echo "# peer bench data ($(date -u +%FT%TZ)), @ip-location-db $IPDB_VER"
  for p in nginx libnginx-mod-http-geoip2 libmaxminddb0 wrk; do
    echo "deb $p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)"
  done
  for f in country.mmdb flowgate/country.mmdb asn.mmdb gen/cidr_50000.geo flowgate/cidr_50000.txt gen/reqpool.tsv; do
    printf '  %-24s %10d bytes  sha256 %s\n' "$f" "$(stat -Lc %s "$f")" "$(sha256sum < "$f" | cut -c1-16)"
  done
} > manifest.txt
echo "setup OK: data in $DATA (manifest.txt)"
