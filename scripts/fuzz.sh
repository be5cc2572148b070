#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cc) with clang, ASan and UBSan in build-fuzz/ and
# runs one of them: scripts/fuzz.sh TARGET SECONDS [CORPUS_DIR]
#   TARGET      e.g. gguf_fuzz, safetensors_fuzz or tokenizer_fuzz
#   CORPUS_DIR  grows with the inputs libFuzzer finds (default build-fuzz/corpus/TARGET); it is
#               seeded from tests/fixtures/<format>/ where that folder exists, and from
#               fuzz/corpus/<format>/.
# tokenizer_fuzz round-trips text through the tokenizers in HLWQ_FUZZ_TOKENIZERS (':'-separated
# folders); by default GPT-2 and Llama-3 from ../shared/data/tokenizers where they are.
# Crashes are written to build-fuzz/crashes/TARGET/ and make the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [CORPUS_DIR]" >&2
  exit 2
fi
target=$1
seconds=$2
corpus=${3:-build-fuzz/corpus/$target}

if [[ ! -f build-fuzz/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHLWQ_FUZZ=ON -DHLWQ_CUDA=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
    >/dev/null
fi
cmake --build build-fuzz --target "$target" -j "$(nproc)"

mkdir -p "$corpus" "build-fuzz/crashes/$target"
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
exec "build-fuzz/$target" "$corpus" "${dictionary[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="build-fuzz/crashes/$target/" -rss_limit_mb=4096 -max_len=65536
