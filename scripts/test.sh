#!/usr/bin/env bash
# README command 2 (and CI's): everything quickstart.sh does, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/quickstart.sh
ctest --test-dir build --output-on-failure "$@"
