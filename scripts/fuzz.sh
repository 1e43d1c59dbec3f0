#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang in build-fuzz/ and runs each
# for SECONDS (default 10) on its seed corpus:
#
#   scripts/fuzz.sh [SECONDS]
#
# CTest's fuzz.smoke runs it for a few seconds. A longer run, worth doing after
# changing the job file reader, the ignore rules, the hostlist parser, the control
# protocol or a control message decoder (runtime/cluster/control_messages.*), is an hour a
# target with the corpus kept between runs (new inputs go to build-fuzz/corpus/, the
# seeds in tests/fuzz/corpus/ are only read):
#
#   scripts/fuzz.sh 3600
#
# A crash leaves its input in build-fuzz/artifacts/ and makes this script fail;
# replay one with `build-fuzz/tests/fuzz/<target> <file>`, and add it to the
# target's seed corpus once fixed.
#
# Exit status: 0 when every target ran clean, 1 when one crashed, leaked, ran out of
# memory or took more than 10 s on one input, or the build failed; 77 (CTest's skip)
# only when clang or clang++ is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
build=build-fuzz
targets=(job_config ignore_rules hostlist control_frame head_messages worker_messages)

if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang++ not found; install clang (Debian: apt-get install clang)" >&2
  exit 77
fi
# clang without libclang-rt (a --no-install-recommends install) cannot link libFuzzer:
# say so and skip rather than fail on a build error that is not ours.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$probe/p.cc"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" 2>"$probe/err"; then
  echo "fuzz.sh: clang++ cannot link libFuzzer ($(head -n 1 "$probe/err")); install libclang-rt-14-dev" >&2
  exit 77
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DTRAINRUN_BUILD_FUZZERS=ON -DTRAINRUN_BUILD_TESTS=OFF -DTRAINRUN_BUILD_BENCHMARKS=OFF \
  >/dev/null
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target fuzzers

status=0
mkdir -p "$build/artifacts"
for target in "${targets[@]}"; do
  fuzzer="$build/tests/fuzz/${target}_fuzzer"
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  echo "== $target: ${seconds} s"
  # The first corpus folder receives new inputs; the seeds are read only.
  if ! "$fuzzer" "$corpus" "tests/fuzz/corpus/$target" -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$target-" 2>"$build/$target.log"; then
    tail -n 60 "$build/$target.log" >&2
    echo "fuzz.sh: $target failed; input in $build/artifacts/, log in $build/$target.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$build/$target.log" | tail -n 2
  fi
done
exit "$status"
