#!/usr/bin/env bash
# The e2e smoke (handshake, requests, stoqey, every fault action and admin endpoint) with mockgw
# under valgrind, then the harness's basic level (the core and mockgw in one process) under
# valgrind: any invalid read or write, use of an uninitialised value, or leak fails it.
# Needs a build (scripts/setup.sh test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOCKGW_BIN:-$root/build/mockgw/mockgw}
harness=${HARNESS_BIN:-$root/build/harness/harness}
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
echo "valgrind-smoke: the harness's basic level under valgrind"
[ -x "$harness" ] || { echo "valgrind-smoke: no harness at $harness (build first, or set HARNESS_BIN)" >&2; exit 1; }
valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
  --show-leak-kinds=definite,indirect,possible --error-exitcode=99 \
  --log-file="$work/harness.vg" "$harness" --level basic >"$work/harness.out" 2>&1 || {
  cat "$work/harness.out" "$work/harness.vg" >&2
  echo "valgrind-smoke: the harness's basic level failed under valgrind (above)" >&2
  exit 1
}
if grep -q . "$work/harness.vg"; then
  cat "$work/harness.vg" >&2
  echo "valgrind-smoke: valgrind reported errors in the harness run (above)" >&2
  exit 1
fi
echo "valgrind-smoke: clean ($(ls "$work" | grep -c '^vg\.') mockgw runs, harness --level basic)"
