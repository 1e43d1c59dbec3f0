#!/bin/bash
# The checks that need a GPU, in one go, on a machine that has one:
#   1. builds trainrun, trainrun-nccl-check and gpu_test in Release (build-gpu/, -j16);
#   2. runs gpu_test (the unit tests of gpu/, gpu/nccl/ included);
#   3. runs trainrun-nccl-check on one GPU directly (RANK=0 WORLD_SIZE=1, MASTER_ADDR
#      127.0.0.1, a free MASTER_PORT), the table on stdout and the JSON to a file;
#   4. runs benchmarks/nccl_bench.py: the check through `trainrun run`, binding auto
#      and none.
# Everything it prints and writes goes under $OUT (else ./gpu-check-out): build.log,
# gpu_test.log, check_1gpu.txt / .jsonl, nccl_bench.txt / .json, summary.txt.
#
#   scripts/gpu-check.sh              from the repository root
#   GPU_CHECK_PREBUILT=DIR scripts/gpu-check.sh
#                                     skip the build: DIR holds launcher/trainrun,
#                                     gpu/nccl/trainrun-nccl-check, tests/gpu_test
#   GPU_CHECK_MAX_BYTES=1G            the largest size (default 1G)
#
# Needs cmake, g++, the CUDA toolkit and NCCL, and the dev packages of fmt, nlohmann
# JSON, hwloc, CLI11, libcurl, OpenSSL, libxml2 and GoogleTest. Exit 2, naming each missing one
# (with the Debian/Ubuntu package), when something is missing; otherwise the first
# failing step's code (3 from the check: no GPU).
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
MAX_BYTES=${GPU_CHECK_MAX_BYTES:-1G}
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3 || true)
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

missing=()
need_header() {  # HEADER PACKAGE: a header in the usual include folders
  local h=$1 pkg=$2 d
  for d in /usr/include /usr/local/include /usr/include/x86_64-linux-gnu "${CUDA_HOME:-/usr/local/cuda}/include" \
           ${NCCL_HOME:+$NCCL_HOME/include}; do
    [ -e "$d/$h" ] && return 0
  done
  missing+=("$h ($pkg)")
}
if [ -z "${GPU_CHECK_PREBUILT:-}" ]; then
  command -v cmake >/dev/null || missing+=("cmake (cmake)")
  command -v g++ >/dev/null || missing+=("g++ (g++)")
  command -v nvcc >/dev/null || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] ||
    missing+=("nvcc, the CUDA toolkit (cuda-toolkit)")
  need_header cuda_runtime.h "cuda-toolkit"
  need_header nccl.h "libnccl-dev"
  need_header fmt/format.h "libfmt-dev"
  need_header nlohmann/json.hpp "nlohmann-json3-dev"
  need_header hwloc.h "libhwloc-dev"
  need_header CLI/CLI.hpp "libcli11-dev"
  need_header curl/curl.h "libcurl4-openssl-dev"
  need_header openssl/evp.h "libssl-dev"
  need_header libxml2/libxml/parser.h "libxml2-dev"
  need_header gtest/gtest.h "libgtest-dev"
  command -v pkg-config >/dev/null || missing+=("pkg-config (pkg-config)")
fi
[ -n "$PYTHON" ] || missing+=("python3 (python3)")
command -v nvidia-smi >/dev/null || summary "note: nvidia-smi not found (no NVIDIA driver?)"
if [ ${#missing[@]} -gt 0 ]; then
  summary "gpu-check: missing:"
  for m in "${missing[@]}"; do summary "  $m"; done
  exit 2
fi

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
if [ -n "${GPU_CHECK_PREBUILT:-}" ]; then
  BUILD=$GPU_CHECK_PREBUILT
  summary "build: prebuilt binaries from $BUILD"
else
  BUILD=$ROOT/build-gpu
  export PATH=$PATH:${CUDA_HOME:-/usr/local/cuda}/bin
  if ! { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTRAINRUN_WITH_CUDA=ON &&
         cmake --build "$BUILD" -j16 --target trainrun trainrun-nccl-check gpu_test; } \
       >"$OUT/build.log" 2>&1; then
    summary "build: FAILED (build.log)"; tail -30 "$OUT/build.log"; exit 1
  fi
  summary "build: ok, $(grep -c -i ' warning' "$OUT/build.log") warning line(s)"
fi

"$BUILD/tests/gpu_test" >"$OUT/gpu_test.log" 2>&1
rc=$?
summary "gpu_test: exit $rc, $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/gpu_test.log" | tr '\n' ' ')"
status=$rc

port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$BUILD/gpu/nccl/trainrun-nccl-check" --table --max-bytes "$MAX_BYTES" \
  --json "$OUT/check_1gpu.jsonl" >"$OUT/check_1gpu.txt" 2>"$OUT/check_1gpu.stderr"
rc=$?
cat "$OUT/check_1gpu.txt" "$OUT/check_1gpu.stderr"
summary "check on 1 GPU, directly: exit $rc"
[ $status -eq 0 ] && status=$rc

"$PYTHON" benchmarks/nccl_bench.py --build "$BUILD" --max-bytes "$MAX_BYTES" \
  --json "$OUT/nccl_bench.json" >"$OUT/nccl_bench.txt" 2>"$OUT/nccl_bench.stderr"
rc=$?
cat "$OUT/nccl_bench.txt" "$OUT/nccl_bench.stderr"
summary "nccl_bench through trainrun (binding auto, none): exit $rc"
[ $status -eq 0 ] && status=$rc
cat "$OUT/summary.txt"
exit $status
