#!/usr/bin/env bash
# Configures ./build (Release) and builds everything, or only the targets named with
# --target, then installs trainrun as /usr/local/bin/trainrun.
#
#   ./scripts/build.sh                    # every target: trainrun, tests, benchmarks
#   ./scripts/build.sh --target trainrun  # only the executable (quickstart.sh)
#
# Options: --target NAME (repeatable), --build-dir DIR (default ./build), -j N (default
# nproc), --no-install. quickstart.sh and test.sh share ./build: the first builds
# trainrun only, the second everything else on top of it.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
jobs=$(nproc)
install=1
targets=()
while (($#)); do
  case "$1" in
    --target) targets+=(--target "$2"); shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    *) echo "build.sh: unknown argument $1 (see the comment at the top)" >&2; exit 64 ;;
  esac
done
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
if ((install)); then
  cmake --install "$build_dir" --prefix /usr/local >/dev/null
  echo "build: installed $(command -v trainrun) ($(trainrun --version))"
fi
