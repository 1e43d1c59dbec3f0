#!/usr/bin/env bash
# Installs what trainrun needs to build, run and test on Debian 12, as root.
# Only missing packages are installed, without recommends; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  g++ make cmake pkg-config git ccache clang-format
  # the fuzz targets (scripts/fuzz.sh, CTest's fuzz.smoke): clang with libFuzzer
  clang libclang-rt-14-dev
  # the mutation check (scripts/mutation-check.sh)
  rsync bc
  libfmt-dev nlohmann-json3-dev libcli11-dev libgtest-dev libyaml-cpp-dev
  libhwloc-dev hwloc libcurl4-openssl-dev libssl-dev libxml2-dev
  # run and test: real processes, namespaces, PyTorch for the example job
  util-linux iproute2 procps python3 python3-torch python3-numpy
  # Python environments of environment.python (venv, pip) and their tests' wheelhouse
  python3-venv python3-pip python3-wheel python3-setuptools
  # object stores: FUSE mounts of az:// and s3:// data, the benchmark's peer
  rclone fuse3
  # the unkillable-rank test: a FUSE file system whose reads never answer (tests/helpers/hang_fs.c)
  libfuse3-dev
  # MPI jobs (mpirun, orted, mpicc for the test program, mpi4py) and the
  # network-namespace cluster of the multi-node tests (ip netns, bridge, veth)
  openmpi-bin libopenmpi-dev python3-mpi4py
  # the images and the container tests (scripts/image.sh, tests/container): podman
  # with runc, mmdebstrap for the debian:12 base
  podman runc uidmap mmdebstrap
  # the portable binary and its .deb (scripts/build.sh --portable, tests/portable):
  # dpkg-shlibdeps for CPack's Depends, lintian for the package check
  dpkg-dev lintian
  # the Slurm tests' cluster (scripts/slurm-cluster.sh: slurmctld, slurmd, srun, sbatch,
  # munged) and the Kubernetes examples' check (tests/examples: PyYAML)
  slurm-wlm munge python3-yaml
)
# Node.js runs the test servers (Azurite, s3rver); a node that is already there
# (NodeSource's, say) is kept.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

./scripts/install-store-servers.sh
