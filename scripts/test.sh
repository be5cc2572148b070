#!/usr/bin/env bash
# Builds and runs every test (CTest + GoogleTest). GPU tests report as skipped without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
