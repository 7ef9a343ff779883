#!/usr/bin/env bash
# Install what is missing, build, and run every test: formatting, cmocka units and pytest e2e
# (ctest runs both), then the same suite again on an ASan+UBSan build, where any memory error,
# leak or undefined behaviour fails it. Exit status is non-zero if anything failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/setup.sh" test
"$root/scripts/format.sh" --check
(cd "$build" && ctest --output-on-failure --timeout 600 -j "$(nproc)")

echo "== the same tests under ASan+UBSan =="
BUILD_DIR=$root/build-asan MGW_SANITIZE=address,undefined "$root/scripts/setup.sh" test
(cd "$root/build-asan" && ctest --output-on-failure --timeout 900 -j "$(nproc)")

echo "== the e2e smoke under valgrind =="
"$root/scripts/valgrind-smoke.sh"
