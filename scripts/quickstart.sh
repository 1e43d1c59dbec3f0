#!/usr/bin/env bash
# README command 1: on a fresh Debian 12, as root, install what is missing, build
# the trainrun executable only (Release, in ./build), and run the example job
# (PyTorch DDP, 2 ranks) into the embedded file:// run history. test.sh builds the
# rest in the same ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh --target trainrun
trainrun run docker/examples/mnist-like/job.json
trainrun history list --limit 5
