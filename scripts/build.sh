#!/usr/bin/env bash
# Configures ./build (Release) and builds everything, or only the targets named with
# --target, then installs trainrun as /usr/local/bin/trainrun.
#
#   ./scripts/build.sh                    # every target: trainrun, tests, benchmarks
#   ./scripts/build.sh --target trainrun  # only the executable (quickstart.sh)
#   ./scripts/build.sh --portable         # the one-file trainrun and its .deb
#
# Options: --target NAME (repeatable), --build-dir DIR (default ./build), -j N (default
# nproc), --no-install, --portable.
#
# --portable (README "Install") configures ./build-portable (unless --build-dir)
# with TRAINRUN_PORTABLE=ON, Release, without tests and benchmarks, against Debian 11's
# glibc 2.31 (scripts/portable-sysroot.sh makes that sysroot once, in .deps/), builds the
# stripped trainrun that needs only glibc 2.31 or newer, makes trainrun_<version>_amd64.deb there with CPack,
# and prints both sizes and the newest glibc symbol version the binary needs. quickstart.sh and test.sh share ./build: the first builds
# trainrun only, the second everything else on top of it.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
jobs=$(nproc)
install=1
portable=0
targets=()
while (($#)); do
  case "$1" in
    --target) targets+=(--target "$2"); shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    --portable) portable=1; shift ;;
    *) echo "build.sh: unknown argument $1 (see the comment at the top)" >&2; exit 64 ;;
  esac
done
if ((portable)); then
  [[ $build_dir == build ]] && build_dir=build-portable
  # Without trainrun-nccl-check: it needs CUDA's and NCCL's libraries, the image's own.
  sysroot=$(scripts/portable-sysroot.sh)
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTRAINRUN_PORTABLE=ON \
    -DTRAINRUN_PORTABLE_SYSROOT="$sysroot" \
    -DTRAINRUN_BUILD_TESTS=OFF -DTRAINRUN_BUILD_BENCHMARKS=OFF -DTRAINRUN_WITH_CUDA=OFF >/dev/null
  cmake --build "$build_dir" -j "$jobs" --target trainrun
  (cd "$build_dir" && cpack -G DEB >/dev/null)
  glibc=$(objdump -T "$build_dir/launcher/trainrun" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n 1)
  echo "build: $build_dir/launcher/trainrun $(stat -c %s "$build_dir/launcher/trainrun") bytes, needs $glibc"
  for deb in "$build_dir"/trainrun_*.deb; do echo "build: $deb $(stat -c %s "$deb") bytes"; done
else
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
fi
if ((install)); then
  cmake --install "$build_dir" --prefix /usr/local >/dev/null
  echo "build: installed $(command -v trainrun) ($(trainrun --version))"
fi
