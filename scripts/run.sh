#!/usr/bin/env bash
# Quick start: install what is missing, build, and serve a fake IB Gateway on 127.0.0.1:4002
# (admin API on 127.0.0.1:4080). Extra arguments go to mockgw (see mockgw --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" run
exec "${BUILD_DIR:-$root/build}/mockgw/mockgw" "$@"
