#!/usr/bin/env bash
# The portable trainrun and its .deb in root file systems that hold none of trainrun's
# build dependencies (README "Install"). CTest runs each mode as portable.<mode>:
#
#   tests/portable/portable_test.sh build BUILD_DIR  # scripts/build.sh --portable there
#   tests/portable/portable_test.sh run BUILD_DIR    # the binary runs jobs in Debian 12 minbase
#   tests/portable/portable_test.sh deb BUILD_DIR    # apt-get install ./trainrun_*.deb there
#   tests/portable/portable_test.sh run-bullseye BUILD_DIR  # both in Debian 11 minbase
#   tests/portable/portable_test.sh deb-bullseye BUILD_DIR  # (glibc 2.31, the floor)
#
# The root file system is Debian 12 minbase (`mmdebstrap --variant=minbase bookworm`),
# the tarball scripts/image.sh makes for its debian:12 base and keeps in .deps/ (or
# $TRAINRUN_ROOTFS_CACHE), or for the -bullseye modes Debian 11 minbase, kept beside it:
# the first run after a clean clone makes it (about a minute with a mirror), later runs
# reuse it. Debian 11 has glibc 2.31, the oldest the portable binary loads on: `run`
# checks that no symbol it needs is newer, and `deb` that the package's Depends lets
# it install there. `run` also deletes libstdc++, libgcc_s, OpenSSL,
# libcurl and libxml2 from its copy, so the binary is shown to need glibc only. Each
# case extracts a fresh copy, enters it with chroot in new mount and PID namespaces
# (its own /proc, /run and /tmp; the host's /sys and /dev for hwloc), and removes it.
# Needs root and mmdebstrap; skips (exit 77) with a message when either is missing.
set -euo pipefail
mode=$1
build_dir=$(realpath -m "$2")
src=$(cd "$(dirname "$0")/../.." && pwd)
cache=${TRAINRUN_ROOTFS_CACHE:-$src/.deps}
suite=bookworm
tarball=$cache/debian-12-minbase.tar
if [[ $mode == *-bullseye ]]; then
  mode=${mode%-bullseye}
  suite=bullseye
  tarball=$cache/debian-11-minbase.tar
fi
# The newest glibc symbol version the portable binary may need (README "Install").
glibc_floor=2.31

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
[[ $(id -u) == 0 ]] || skip "needs root (chroot, mounts)"

if [[ $mode == build ]]; then
  "$src/scripts/build.sh" --portable --no-install --build-dir "$build_dir" -j "$(nproc)"
  exit 0
fi

command -v mmdebstrap >/dev/null || skip "needs mmdebstrap (scripts/install-deps.sh)"
binary=$build_dir/launcher/trainrun
[[ -x $binary ]] || fail "$binary is missing: portable.build makes it"

# For bookworm the same command as scripts/image.sh, so either makes the tarball for both.
if [[ ! -s $tarball ]]; then
  mkdir -p "$cache"
  echo "making $tarball with mmdebstrap"
  mmdebstrap --variant=minbase --format=tar --quiet $suite "$tarball.tmp" \
    "deb http://deb.debian.org/debian $suite main" \
    "deb http://deb.debian.org/debian $suite-updates main" \
    "deb http://deb.debian.org/debian-security $suite-security main"
  mv "$tarball.tmp" "$tarball"
fi

work=$(mktemp -d /tmp/trainrun-portable-XXXXXX)
trap 'rm -rf "$work"' EXIT

# fresh_root NAME: a new copy of the root file system, its path on stdout.
fresh_root() {
  local root=$work/$1
  mkdir -p "$root"
  tar -xf "$tarball" -C "$root"
  echo "$root"
}

# enter ROOT CMD...: CMD inside ROOT, with /proc, /sys, /dev and a fresh /run and /tmp.
enter() {
  unshare --mount --pid --fork --propagation private -- sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    exec chroot "$root" "$@"' sh "$@"
}

case "$mode" in
  run)
    needed=$(objdump -p "$binary" | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')
    for lib in $needed; do
      case "$lib" in
        # glibc's own (threads and dlopen are in separate libraries before 2.34).
        libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | ld-linux-x86-64.so.2) ;;
        *) fail "the portable binary needs $lib (NEEDED: $needed)" ;;
      esac
    done
    newest=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n 1)
    [[ $(printf '%s\n' "${newest#GLIBC_}" "$glibc_floor" | sort -V | tail -n 1) == "$glibc_floor" ]] ||
      fail "the portable binary needs $newest, newer than glibc $glibc_floor: $(objdump -T "$binary" |
        grep -E 'GLIBC_2\.(3[2-9]|[4-9][0-9])' | awk '{print $NF, $(NF-1)}' | tr '\n' ' ')"
    root=$(fresh_root run)
    for pattern in 'libstdc++.so*' 'libgcc_s.so*' 'libssl.so*' 'libcrypto.so*' 'libcurl*.so*' \
      'libxml2.so*' 'libhwloc.so*' 'libfmt.so*' 'libudev.so*'; do
      find "$root/usr/lib" "$root/lib" -name "$pattern" -exec rm -f {} + 2>/dev/null || true
    done
    install -m 755 "$binary" "$root/usr/local/bin/trainrun"
    mkdir -p "$root/job"
    cat >"$root/job/job.json" <<'JOB'
{
  "experimentName": "portable",
  "command": ["/bin/sh", "-c", "echo hello from rank $RANK > outputs/hello-$RANK.txt"],
  "processCountPerNode": 2
}
JOB
    # One namespace for the three runs: /run (the topology cache) lives as long as it.
    enter "$root" /bin/sh -ec '
      cd /job
      trainrun --version
      run() {  # run ID [ENV...]: a run with file:// history, its system log on stdout
        id=$1; shift
        env "$@" trainrun run job.json --history file:///history --run-id "$id" >"/job/$id.out" 2>&1 ||
          { cat "/job/$id.out"; echo "run $id failed" >&2; exit 1; }
        cat /history/portable/"$id"/system_logs/*
      }
      run first >/job/first.log
      run second >/job/second.log
      run third CUDA_VISIBLE_DEVICES=0 >/job/third.log
      test -s /history/portable/first/outputs/hello-1.txt
      grep -q "\"Completed\"" /history/portable/first/run.json
      set +e
      AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b trainrun run job.json \
        --history s3://bucket/runs --run-id s3run >/job/s3.out 2>&1
      echo $? >/job/s3.rc
    '
    grep -q "saved to the per-boot cache /run/trainrun/" "$root/job/first.log" ||
      fail "the first run did not save the topology cache: $(grep -i topology "$root/job/first.log")"
    grep -q "from the per-boot cache /run/trainrun/" "$root/job/second.log" ||
      fail "the second run did not use the topology cache: $(grep -i topology "$root/job/second.log")"
    grep -q "saved to the per-boot cache" "$root/job/third.log" ||
      fail "CUDA_VISIBLE_DEVICES=0 did not rebuild the topology cache: $(grep -i topology "$root/job/third.log")"
    [[ $(cat "$root/job/s3.rc") != 0 ]] || fail "an s3:// history without libcurl succeeded"
    grep -q "apt-get install libcurl4" "$root/job/s3.out" ||
      fail "an s3:// history without libcurl does not name the package: $(cat "$root/job/s3.out")"
    echo "portable.run ($suite): $(enter "$root" /lib/x86_64-linux-gnu/libc.so.6 | head -n 1)"
    echo "portable.run ($suite): needs $newest; file:// job ran, topology cache saved, used, rebuilt; s3:// exits $(cat "$root/job/s3.rc"): $(grep -m1 libcurl "$root/job/s3.out")"
    ;;
  deb)
    debs=("$build_dir"/trainrun_*_amd64.deb)
    [[ -s ${debs[0]} ]] || fail "no trainrun_*_amd64.deb in $build_dir: portable.build makes it"
    root=$(fresh_root deb)
    cp "${debs[0]}" "$root/root/"
    # Offline: Depends (glibc only) must be satisfied by what minbase has.
    enter "$root" /bin/sh -ec "
      cd /root
      apt-get install -y -q ./$(basename "${debs[0]}")
      trainrun --version
      test -f /usr/share/doc/trainrun/README.md
    " || fail "the .deb did not install and run"
    depends=$(dpkg-deb -f "${debs[0]}" Depends)
    libc=$(sed -n 's/.*libc6 (>= \([^)]*\)).*/\1/p' <<<"$depends")
    [[ -n $libc ]] && dpkg --compare-versions "$libc" le "$glibc_floor" ||
      fail "the .deb's Depends ($depends) asks for more than libc6 (>= $glibc_floor)"
    echo "portable.deb ($suite): $(basename "${debs[0]}") (Depends: $depends) installed offline; trainrun --version runs"
    ;;
  *) fail "unknown mode $mode (build, run, deb, run-bullseye or deb-bullseye)" ;;
esac
