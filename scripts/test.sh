#!/usr/bin/env bash
# README command 2 (and CI's): everything quickstart.sh does, then builds every
# target in the same ./build and runs every test. Arguments go to ctest
# (e.g. -R '^process_test'). ctest's own summary, last, names each test that failed
# or timed out; the exit code is ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/quickstart.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure "$@"
