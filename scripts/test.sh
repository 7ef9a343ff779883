#!/usr/bin/env bash
# Install what is missing, build (gcc, and clang for its warnings), and run every test: formatting,
# cmocka units and pytest e2e (ctest runs both), then the same suite again on an ASan+UBSan build,
# where any memory error, leak or undefined behaviour fails it, then the valgrind smoke and 60 s
# of each libFuzzer target.
# Exit status is non-zero if anything failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/setup.sh" test
"$root/scripts/format.sh" --check

echo "== clang builds warning-free too (-Werror) =="
CC=clang cmake -S "$root" -B "$root/build-clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build-clang" -j "$(nproc)" -- --no-print-directory -s
(cd "$build" && ctest --output-on-failure --timeout 600 -j "$(nproc)")

echo "== the same tests under ASan+UBSan =="
BUILD_DIR=$root/build-asan MGW_SANITIZE=address,undefined "$root/scripts/setup.sh" test
(cd "$root/build-asan" && ctest --output-on-failure --timeout 900 -j "$(nproc)")

echo "== the e2e smoke under valgrind =="
"$root/scripts/valgrind-smoke.sh"

echo "== each fuzz target for ${FUZZ_SECONDS:-60} s =="
"$root/scripts/fuzz.sh" "${FUZZ_SECONDS:-60}"
