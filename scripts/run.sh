#!/usr/bin/env bash
# Quick start: install what is missing, build (mockgw, the core, the harness), and run the
# harness's standard level — the core against a fake IB Gateway on loopback, every scenario of
# scenarios/basic and scenarios/standard — ending with `DEPLOY: OK` or `DO NOT DEPLOY: N failed`
# (exit 0 / 1). Extra arguments go to the harness (see harness --help), e.g. --junit report.xml.
# To serve a fake gateway instead: build/mockgw/mockgw (see mockgw --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" run
exec "${BUILD_DIR:-$root/build}/harness/harness" --level standard "$@"
