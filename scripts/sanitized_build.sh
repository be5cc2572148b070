#!/usr/bin/env bash
# Configures (once) and builds a sanitizer build with clang, without CUDA:
#   scripts/sanitized_build.sh asan TARGET...   build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer
#                                               (undefined behaviour fatal), with libFuzzer's coverage
#                                               instrumentation so that the same build serves the tests
#                                               (scripts/test_sanitizers.sh) and the fuzz targets
#                                               (scripts/fuzz.sh): one sanitized build instead of two.
#   scripts/sanitized_build.sh tsan TARGET...   build-tsan/: ThreadSanitizer, with the multi-threaded
#                                               tests alone (the list below).
# Both at -O1 with line tables for stack traces, with precompiled common headers (HLWQ_PCH). Highway compiles only this machine's SIMD target
# (-march=native, HWY_COMPILE_ONLY_STATIC) instead of five or more: the kernels that run here are the
# ones checked, at a fraction of the compile time. File paths in the objects are relative to the
# checkout and ccache gets CCACHE_BASEDIR, so a fresh clone elsewhere (CI) reuses the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=$1
shift
folder=build-$kind
# The tests that run work on several threads: the thread pool, parallel rows and kernels, grouped
# linears, quantize and export with threads (in-process and through the command), generation and
# the forward pass, and perplexity over threads.
tsan_tests="core/thread_pool_test.cc;ops/cpu/parallel_rows_test.cc;ops/linear_test.cc;ops/linear_group_test.cc"
tsan_tests+=";convert/quantize_model_test.cc;cli/quantize_command_test.cc;convert/export_model_test.cc"
tsan_tests+=";engine/generate_test.cc;engine/forward_test.cc;eval/model_perplexity_test.cc"
if [[ ! -f $folder/build.ninja ]]; then
  # -fno-pch-timestamp: ccache can cache objects built with the precompiled headers (HLWQ_PCH).
  flags="-Xclang -fno-pch-timestamp -O1 -gline-tables-only -fno-omit-frame-pointer -ffile-prefix-map=$PWD/= -march=native -DHWY_COMPILE_ONLY_STATIC=1"
  case $kind in
    asan) options=(-DHLWQ_SANITIZE=ON -DHLWQ_FUZZ=ON); flags+=" -fsanitize=fuzzer-no-link" ;;
    tsan) options=(-DHLWQ_SANITIZE=thread "-DHLWQ_TESTS=$tsan_tests") ;;
    *) echo "usage: scripts/sanitized_build.sh asan|tsan TARGET..." >&2; exit 2 ;;
  esac
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  CC=clang CXX=clang++ cmake -S . -B "$folder" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" -DHLWQ_CUDA=OFF -DHLWQ_PCH=ON "${options[@]}" "${launcher[@]}" >/dev/null
fi
CCACHE_BASEDIR=$PWD CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime \
  cmake --build "$folder" --target "$@" -j "$(nproc)"
