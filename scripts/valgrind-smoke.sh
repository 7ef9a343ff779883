#!/usr/bin/env bash
# The e2e smoke (handshake, requests, stoqey, every fault action and admin endpoint) with mockgw
# under valgrind: any invalid read or write, use of an uninitialised value, or leak fails it.
# Needs a build (scripts/setup.sh test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOCKGW_BIN:-$root/build/mockgw/mockgw}
[ -x "$bin" ] || { echo "valgrind-smoke: no mockgw at $bin (build first, or set MOCKGW_BIN)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind-smoke: valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/mockgw" <<WRAP
#!/bin/sh
exec valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \\
  --show-leak-kinds=definite,indirect,possible --error-exitcode=99 \\
  --log-file="$work/vg.%p" "$bin" "\$@"
WRAP
chmod +x "$work/mockgw"
MOCKGW_BIN=$work/mockgw /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  "$root/e2e/test_01_handshake.py" "$root/e2e/test_02_requests.py" "$root/e2e/test_06_stoqey.py" \
  "$root/e2e/test_07_faults.py" "$root/e2e/test_09_admin_faults.py"
if cat "$work"/vg.* 2>/dev/null | grep -q .; then
  cat "$work"/vg.* >&2
  echo "valgrind-smoke: valgrind reported errors (above)" >&2
  exit 1
fi
echo "valgrind-smoke: clean ($(ls "$work" | grep -c '^vg\.') mockgw runs)"
