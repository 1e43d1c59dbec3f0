#!/usr/bin/env bash
# Builds trainrun's two images from docker/Dockerfile with podman, as root on Debian 12,
# with no Docker engine and no registry (README, "Containers"):
#
#   scripts/image.sh                  # trainrun:runtime and trainrun:example
#   scripts/image.sh --target runtime # only trainrun:runtime
#   scripts/image.sh --base-image nvcr.io/nvidia/pytorch:25.01-py3 --tag my-trainrun
#
# 1. installs what is missing (podman, mmdebstrap, runc, uidmap; scripts/install-deps.sh
#    lists them too);
# 2. writes /etc/containers/containers.conf.d/50-trainrun.conf, what podman needs on a
#    machine like this one (hybrid cgroups, no systemd): runc, cgroupfs, a file events
#    log, default ulimits no higher than this machine's hard limits. A file of that name
#    that trainrun did not write is left alone, and so is any other configuration
#    (podman reads the drop-in after containers.conf, so only these keys change);
# 3. makes the base debian:12 with `mmdebstrap --variant=minbase bookworm` into
#    .deps/debian-12-minbase.tar (kept: later runs reuse it; delete it to refresh the
#    base) and `podman import`s it when podman has no debian:12;
# 4. `podman build --pull=never` of the targets (podman's layer cache makes a rebuild
#    redo only what changed), with this machine's ccache mounted for the compile (where
#    ccache is installed and TRAINRUN_IMAGE_NO_HOST_CCACHE is unset): after
#    scripts/test.sh has built the same tree, trainrun compiles from cache hits. Then
#    prints each image's size.
#
# Options: --target runtime|example|all (default all), --tag NAME (default trainrun:
# the images are NAME:runtime and NAME:example), --base-image IMAGE (build on IMAGE,
# pulled when missing, instead of the local debian:12), --no-install.
set -euo pipefail
cd "$(dirname "$0")/.."

target=all
tag=trainrun
base_image=
install=1
while (($#)); do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --base-image) base_image=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    *) echo "image.sh: unknown argument $1 (see the comment at the top)" >&2; exit 64 ;;
  esac
done
case "$target" in
  all) targets=(runtime example) ;;
  runtime | example) targets=("$target") ;;
  *) echo "image.sh: --target is runtime, example or all, not $target" >&2; exit 64 ;;
esac

say() { echo "image: $*"; }

if ((install)); then
  missing=()
  for p in podman mmdebstrap runc uidmap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

# Default ulimits for containers: podman refuses to start a container whose limits
# are above the host's hard limits.
conf_dir=/etc/containers/containers.conf.d
conf=$conf_dir/50-trainrun.conf
marker="# written by trainrun's scripts/image.sh"
capped() {  # capped WANTED HARD: the smaller, "unlimited" being the largest
  if [[ $2 == unlimited ]] || (($1 <= $2)); then echo "$1"; else echo "$2"; fi
}
nofile=$(capped 20000 "$(ulimit -Hn)")
nproc=$(capped 32768 "$(ulimit -Hu)")
if [[ -e $conf ]] && ! head -n 1 "$conf" | grep -qF "$marker"; then
  say "$conf was not written by trainrun: left as it is"
else
  mkdir -p "$conf_dir"
  cat >"$conf.tmp" <<EOF
$marker: it rewrites this file unless this first line is deleted.
# runc, not crun: crun fails on hybrid cgroups (v1 controllers + a v2 mount); cgroupfs
# and a file events log: no systemd here; ulimits within this host's hard limits.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  if ! cmp -s "$conf.tmp" "$conf"; then
    mv "$conf.tmp" "$conf"
    say "wrote $conf"
  else
    rm -f "$conf.tmp"
  fi
fi

build_args=()
# The host's compiler cache, for the compile inside the build (docker/Dockerfile).
if command -v ccache >/dev/null 2>&1 && [[ -z ${TRAINRUN_IMAGE_NO_HOST_CCACHE:-} ]]; then
  host_ccache=$(ccache -k cache_dir)
  mkdir -p "$host_ccache"
  build_args+=(-v "$host_ccache:/ccache" --build-arg CCACHE_DIR=/ccache)
  # ccache hashes these (they change the compiler's messages): the host's, for hits.
  for v in LANG LC_ALL LC_CTYPE LC_MESSAGES; do
    if [[ -n ${!v+set} ]]; then build_args+=(--build-arg "$v=${!v}"); fi
  done
fi
pull=--pull=never
if [[ -n $base_image ]]; then
  build_args+=(--build-arg "BASE_IMAGE=$base_image")
  pull=--pull=missing
elif ! podman image exists debian:12; then
  tarball=.deps/debian-12-minbase.tar
  if [[ ! -s $tarball ]]; then
    mkdir -p .deps
    say "making the debian:12 base with mmdebstrap into $tarball"
    mmdebstrap --variant=minbase --format=tar --quiet bookworm "$tarball.tmp" \
      "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main"
    mv "$tarball.tmp" "$tarball"
  fi
  say "importing $tarball as debian:12"
  podman import --quiet "$tarball" debian:12 >/dev/null
fi

for t in "${targets[@]}"; do
  start=$SECONDS
  say "building $tag:$t"
  podman build "$pull" --layers "${build_args[@]}" -f docker/Dockerfile --target "$t" \
    -t "$tag:$t" .
  say "built $tag:$t in $((SECONDS - start)) s"
done
for t in "${targets[@]}"; do
  bytes=$(podman image inspect --format '{{.Size}}' "$tag:$t")
  say "$tag:$t is $((bytes / 1000000)) MB"
done
