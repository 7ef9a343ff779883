#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages; npm packages for the e2e compat tests) and
# builds mockgw. Usage: scripts/setup.sh [run|test|deps]   (test also installs the test tools;
# deps installs those and stops)
# Environment: BUILD_DIR (default ./build), MGW_SANITIZE (e.g. address,undefined).
set -euo pipefail

mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

need_pkgs=(build-essential cmake pkg-config libuv1-dev libcjson-dev libhttp-parser-dev tzdata)
if [ "$mode" = test ] || [ "$mode" = deps ]; then
  # python3-pip: e2e checks that `pip install --no-deps ./e2e` installs the pytest plugin.
  need_pkgs+=(libcmocka-dev python3 python3-pytest python3-pip clang libclang-rt-14-dev
              clang-format valgrind)
fi

missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js may come from Debian or from NodeSource: only ask apt when the commands are absent.
if [ "$mode" = test ] && ! command -v npm >/dev/null 2>&1; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  missing+=(npm)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: run as root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[ "$mode" = deps ] && exit 0

build_type=RelWithDebInfo
[ -n "${MGW_SANITIZE:-}" ] && build_type=Debug
cmake_args=(-S "$root" -B "$build" -DCMAKE_BUILD_TYPE=$build_type)
# Explicit both ways: the cache would otherwise keep what an earlier run.sh or test.sh chose.
if [ "$mode" = test ]; then cmake_args+=(-DMGW_TESTS=ON); else cmake_args+=(-DMGW_TESTS=OFF); fi
[ -n "${MGW_SANITIZE:-}" ] && cmake_args+=("-DMGW_SANITIZE=$MGW_SANITIZE")
cmake "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"

compat=$root/e2e/compat
if [ "$mode" = test ] && [ -f "$compat/package-lock.json" ] &&
   ! cmp -s "$compat/package-lock.json" "$compat/node_modules/.mgw-installed-lock"; then
  # The real third-party clients the compat tests drive, pinned by the lock file.
  (cd "$compat" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$compat/package-lock.json" "$compat/node_modules/.mgw-installed-lock"
fi
