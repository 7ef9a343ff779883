#!/usr/bin/env bash
# Runs each libFuzzer target for a time budget: scripts/fuzz.sh [SECONDS] [TARGET...]
# (default 60 s each; targets: wire session script admin scenario proxy replay). Builds
# build-fuzz with clang, ASan+UBSan and libFuzzer (installs what is missing, like
# scripts/setup.sh test). The seed corpus of each target (tests/fuzz/corpus/<target>, plus the
# shipped incident scripts for `script` and every shipped scenario for `scenario`) is copied to
# a scratch corpus, so a run never writes
# into the repository. Fails on
# any crash, leak, timeout or UBSan report, leaving the reproducer in build-fuzz/findings/ —
# add it to tests/fuzz/corpus/<target>/ with the fix, and ctest replays it from then on.
# Environment: FUZZ_BUILD (the build directory, default build-fuzz).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(wire session script admin scenario proxy replay)
case $secs in '' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac
build=${FUZZ_BUILD:-$root/build-fuzz}

"$root/scripts/setup.sh" deps
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMGW_FUZZ=ON \
  -DMGW_SANITIZE=address,undefined -DMGW_TESTS=OFF -DMGW_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" -- --no-print-directory -s

mkdir -p "$build/findings"
status=0
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: no target '$t' (have: wire session script admin scenario proxy replay)" >&2; exit 2; }
  work=$(mktemp -d)
  cp "$root/tests/fuzz/corpus/$t/"* "$work/"
  [ "$t" = script ] && cp "$root/mockgw/scripts/"*.json "$work/"
  if [ "$t" = scenario ]; then # every shipped scenario seeds it (names repeat across levels)
    i=0
    for f in "$root"/scenarios/*/*.json "$root"/tests/scenarios/*.json; do
      i=$((i + 1))
      cp "$f" "$work/seed-$i.json"
    done
  fi
  echo "== fuzz_$t for ${secs} s =="
  log=$build/findings/fuzz_$t.log
  if ! "$bin" "$work" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -print_final_stats=1 \
       -artifact_prefix="$build/findings/${t}-" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: fuzz_$t FAILED; reproducer in $build/findings/ (log: $log)" >&2
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$log" | tail -2 || true
  rm -rf "$work"
done
exit $status
