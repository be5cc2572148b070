#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cc) with clang, ASan and UBSan in build-asan/fuzz/ and
# runs one of them: scripts/fuzz.sh TARGET SECONDS [CORPUS_DIR]   (scripts/fuzz.sh --build builds them all)
#   TARGET      e.g. gguf_fuzz, safetensors_fuzz or tokenizer_fuzz
#   CORPUS_DIR  grows with the inputs libFuzzer finds (default build-asan/fuzz/corpus/TARGET); it is
#               seeded from tests/fixtures/<format>/ where that folder exists, and from
#               fuzz/corpus/<format>/.
# tokenizer_fuzz round-trips text through the tokenizers in HLWQ_FUZZ_TOKENIZERS (':'-separated
# folders); by default GPT-2 and Llama-3 from ../shared/data/tokenizers where they are.
# Crashes are written to build-asan/fuzz/crashes/TARGET/ and make the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 && ${1:-} != --build ]]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [CORPUS_DIR] | scripts/fuzz.sh --build" >&2
  exit 2
fi
target=$1
seconds=${2:-0}
corpus=${3:-build-asan/fuzz/corpus/$target}

# The fuzz targets live in the ASan build (scripts/sanitized_build.sh asan), whose library carries
# libFuzzer's coverage instrumentation.
targets=()
for source in fuzz/*_fuzz.cc; do targets+=("$(basename "$source" .cc)"); done
if [[ $target == --build ]]; then
  exec scripts/sanitized_build.sh asan "${targets[@]}"
fi
scripts/sanitized_build.sh asan "$target"
mkdir -p "$corpus" "build-asan/fuzz/crashes/$target"
seeds=tests/fixtures/${target%_fuzz}
if [[ -d $seeds ]]; then
  find "$seeds" -type f \( -name '*.gguf' -o -name '*.safetensors' \) -exec cp -n {} "$corpus"/ \;
fi
if [[ -d fuzz/corpus/${target%_fuzz} ]]; then
  cp -n fuzz/corpus/"${target%_fuzz}"/* "$corpus"/ 2>/dev/null || true
fi
dictionary=()
if [[ -f fuzz/${target%_fuzz}.dict ]]; then
  dictionary=(-dict="fuzz/${target%_fuzz}.dict")
fi
if [[ $target == tokenizer_fuzz && -z ${HLWQ_FUZZ_TOKENIZERS:-} ]]; then
  shared=../shared/data/tokenizers
  found=()
  for name in gpt2 llama3; do
    if [[ -d $shared/$name ]]; then found+=("$shared/$name"); fi
  done
  HLWQ_FUZZ_TOKENIZERS=$(IFS=:; echo "${found[*]}")
  export HLWQ_FUZZ_TOKENIZERS
fi
# UBSan findings abort so libFuzzer records them as crashes.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
exec "build-asan/$target" "$corpus" "${dictionary[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="build-asan/fuzz/crashes/$target/" -rss_limit_mb=4096 -max_len=65536
