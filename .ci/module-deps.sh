#!/bin/sh
# Which top-level module of src/ uses which (any `crate::<module>` path outside comments),
# and whether any of them runs both ways or round a longer loop. Exit 1 on a loop.
# Usage: .ci/module-deps.sh [src-dir]
set -eu
src=${1:-src}
edges=$(
  for f in $(find "$src" -name '*.rs' | sort); do
    rel=${f#"$src"/}
    from=${rel%%/*}
    from=${from%.rs}
    grep -v '^[[:space:]]*//' "$f" | grep -o 'crate::[a-z_][a-z0-9_]*' | sed 's/^crate:://' |
      while read -r to; do
        [ "$to" != "$from" ] && echo "$from $to"
      done || true
  done | sort -u
)
echo "$edges" | awk '{ deps[$1] = deps[$1] " " $2 } END { for (m in deps) print m ":" deps[m] }' | sort
status=0
echo "$edges" | while read -r a b; do
  if echo "$edges" | grep -qx "$b $a"; then
    [ "$a" \< "$b" ] && echo "both ways: $a <-> $b"
  fi
done | grep . && status=1
if ! echo "$edges" | tsort >/dev/null 2>&1; then
  echo "loop:"; echo "$edges" | tsort 2>&1 >/dev/null | sed 's/^/  /'
  status=1
fi
[ "$status" -eq 0 ] && echo "no module uses a module that uses it back"
exit "$status"
