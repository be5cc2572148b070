#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/*_fuzz.cc) for a bounded time, as CI does:
#   scripts/fuzz_ci.sh [SECONDS_EACH]   (default 60)
# Each target starts from the corpus kept in the repository (fuzz/corpus/<format>/ and
# tests/fixtures/<format>/) copied to build-asan/fuzz/ci-corpus/, so a run never changes the
# repository. A crash, leak, timeout or sanitizer finding fails the script; the input that caused
# it is in build-asan/fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=()
for source in fuzz/*_fuzz.cc; do
  name=$(basename "$source" .cc)
  targets+=("$name")
done
# One build of all targets (in parallel); each run below then finds its target built.
scripts/fuzz.sh --build
mkdir -p build-asan/fuzz
status=0
for target in "${targets[@]}"; do
  rm -rf "build-asan/fuzz/ci-corpus/$target"
  echo "== fuzz $target for $seconds s"
  if scripts/fuzz.sh "$target" "$seconds" "build-asan/fuzz/ci-corpus/$target" >"build-asan/fuzz/$target.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "build-asan/fuzz/$target.log" || true
  else
    status=1
    tail -n 60 "build-asan/fuzz/$target.log"
    echo "== fuzz $target FAILED (inputs in build-asan/fuzz/crashes/$target/)"
  fi
done
exit $status
