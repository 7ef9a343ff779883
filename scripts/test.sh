#!/usr/bin/env bash
# Install what is missing, build, and run every test: formatting, cmocka units and pytest e2e
# (ctest runs both). Exit status is non-zero if anything failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/setup.sh" test
"$root/scripts/format.sh" --check
cd "$build"
ctest --output-on-failure --timeout 600 -j "$(nproc)"
