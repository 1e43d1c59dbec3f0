#!/usr/bin/env bash
# Configures and builds trainrun in ./build and installs it as /usr/local/bin/trainrun.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
cmake --install build --prefix /usr/local >/dev/null
echo "build: installed $(command -v trainrun) ($(trainrun --version))"
