#!/usr/bin/env bash
# Installs the object-store servers the tests and benchmarks start on loopback,
# from the npm registry, into <repo>/.deps (git-ignored): Azurite (Azure Blob) and
# s3rver (S3). Called by install-deps.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: Azurite 3.36 and later want Node.js 21+; 3.35 runs on Debian 12's Node.js 18.
AZURITE_VERSION=3.35.0
S3RVER_VERSION=3.7.1

installed() {  # name version
  local file=".deps/node_modules/$1/package.json"
  [[ -f "$file" ]] && grep -q "\"version\": \"$2\"" "$file"
}

if installed azurite "$AZURITE_VERSION" && installed s3rver "$S3RVER_VERSION"; then
  exit 0
fi
echo "install-store-servers: npm install azurite@$AZURITE_VERSION s3rver@$S3RVER_VERSION into .deps"
mkdir -p .deps
npm install --prefix .deps --no-save --no-audit --no-fund --loglevel=error \
  "azurite@$AZURITE_VERSION" "s3rver@$S3RVER_VERSION"
