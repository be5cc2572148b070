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
# linears, quantize and export with threads (in-process, through the command, and stopped by a
# signal), width planning (its error measurements on a pool), attention and the gated delta rule
# (heads over threads), generation and the model runner on a pool (every architecture's forward pass, Qwen3.5's
# delta-net heads, every quantized format's kernels), perplexity over threads, `hlwq serve` as a
# process (its scheduler, HTTP workers and signal watcher), and the server's tests in tests/server/
# (the batch scheduler's thread beside its callers, httplib's worker threads; the request parsing
# and stop strings that those threads call are tested there too, and cost little).
tsan_tests="core/thread_pool_test.cc;ops/cpu/parallel_rows_test.cc;ops/linear_test.cc;ops/linear_group_test.cc"
tsan_tests+=";convert/quantize_model_test.cc;cli/quantize_command_test.cc;convert/export_model_test.cc"
tsan_tests+=";cli/interrupted_commands_test.cc;engine/generate_test.cc;engine/forward_test.cc"
tsan_tests+=";engine/qwen35_runner_test.cc;engine/quantized_formats_test.cc;eval/model_perplexity_test.cc"
tsan_tests+=";cli/serve_command_test.cc;ops/attention_test.cc;ops/gated_delta_rule_test.cc"
tsan_tests+=";convert/width_planning_test.cc;eval/perplexity_test.cc"
for test in tests/server/*_test.cc; do tsan_tests+=";${test#tests/}"; done
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
elif [[ $kind == tsan ]] && ! grep -qxF "HLWQ_TESTS:STRING=$tsan_tests" "$folder/CMakeCache.txt"; then
  # A build-tsan/ configured with another list of tests: the list above is the one built.
  cmake -B "$folder" "-DHLWQ_TESTS=$tsan_tests" >/dev/null
fi
CCACHE_BASEDIR=$PWD CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime \
  cmake --build "$folder" --target "$@" -j "$(nproc)"
