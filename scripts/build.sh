#!/usr/bin/env bash
# Configures (once) and builds hlwq in build/. CUDA is compiled where nvcc exists.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/build.ninja ]]; then
  if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export PATH=/usr/local/cuda/bin:$PATH
  fi
  # ccache, where installed, makes rebuilds and other checkouts of the same sources cheap.
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
fi
# Paths relative to the checkout, so that a fresh clone elsewhere (CI) hits the same cache entries.
export CCACHE_BASEDIR=$PWD
cmake --build build -j "$(nproc)"
