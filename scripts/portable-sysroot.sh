#!/usr/bin/env bash
# The glibc the portable trainrun is linked against (cmake/portable.cmake, README
# "Install"): Debian 11 bullseye's libc6 and libc6-dev (glibc 2.31), unpacked with
# `mmdebstrap --variant=extract` into DIR, by default .deps/bullseye-sysroot (or
# $TRAINRUN_ROOTFS_CACHE/bullseye-sysroot), outside what git tracks, like the test
# root file systems. The host's gcc 12 compiles and links against it with --sysroot;
# libstdc++ and libgcc stay gcc 12's, linked in statically (cmake/glibc_compat.c
# supplies the four symbols they take from a newer glibc).
#
#   scripts/portable-sysroot.sh [DIR]   # prints DIR; makes it first when missing
#
# Made once (about 30 s with a mirror, 60 MB), reused while DIR/.complete exists.
# Needs mmdebstrap and a Debian mirror that serves bullseye.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(realpath -m "${1:-${TRAINRUN_ROOTFS_CACHE:-$src/.deps}/bullseye-sysroot}")
if [[ ! -e $dir/.complete ]]; then
  command -v mmdebstrap >/dev/null ||
    { echo "portable-sysroot: needs mmdebstrap (scripts/install-deps.sh)" >&2; exit 1; }
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  echo "portable-sysroot: making $dir (bullseye libc6-dev) with mmdebstrap" >&2
  mmdebstrap --variant=extract --include=libc6-dev --format=directory --quiet bullseye \
    "$dir.tmp" "deb http://deb.debian.org/debian bullseye main" >&2
  # Absolute links (libpthread.so -> /lib/..., /lib64/ld-linux-x86-64.so.2) would
  # point at the host's newer glibc: made relative, so they stay inside the sysroot.
  find "$dir.tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    ln -sfn "$(realpath -m -s --relative-to="$(dirname "$link")" "$dir.tmp$(readlink "$link")")" "$link"
  done
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
