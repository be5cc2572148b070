#!/usr/bin/env bash
# Quantizes a model about as large as this machine's memory and reports peak memory: a synthetic
# BF16 model of a real shape written under a work folder, quantized with `hlwq quantize` under
# /usr/bin/time -v. SHAPE: qwen3.5-9b (default; the hybrid, 32 layers, vocabulary 248,320, about
# 18 GB) or qwen3-8b (hidden 4096, 36 layers, 8.2 B weights, 16.4 GB; largest tensor 1.24 GB).
#   scripts/quantize_large_model.sh [WORK_FOLDER] [BITS] [SHAPE]   (default /tmp/hlwq-large, 5)
# Needs ~22 GB free disk in WORK_FOLDER; removes the models afterwards (HLWQ_KEEP=1 keeps them).
# Fails if peak RSS exceeds the largest tensor plus the margin (HLWQ_MARGIN_MB, default 1024 MB:
# the thread pool, one tensor's codes and norms, and the read-ahead of the mapped input).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/hlwq-large}
bits=${2:-5}
shape=${3:-qwen3.5-9b}
margin_mb=${HLWQ_MARGIN_MB:-1024}
scripts/build.sh >/dev/null
if [[ ! -f $work/$shape-bf16/config.json ]]; then
  rm -rf "$work"
  echo "writing the synthetic model into $work (a few minutes)"
  build/hlwq bench --synthetic "$shape" --format bf16 --save "$work" --threads "$(nproc)"
fi
rm -rf "$work/q$bits"
/usr/bin/time -v build/hlwq quantize -m "$work/$shape-bf16" -o "$work/q$bits" --bits "$bits" --json \
  >"$work/quantize.json" 2>"$work/time.txt"
peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
largest=$(python3 -c "import json; print(json.load(open('$work/quantize.json'))['largest_tensor_bytes'])")
input=$(python3 -c "import json; print(json.load(open('$work/quantize.json'))['bytes_in'])")
seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
memory_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
echo "input $((input / 1000000)) MB, largest tensor $((largest / 1000000)) MB, machine memory $((memory_kb / 1000)) MB"
echo "peak RSS $((peak_kb / 1000)) MB, wall $seconds, limit: largest tensor + $margin_mb MB"
if [[ ${HLWQ_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
if ((peak_kb * 1024 > largest + margin_mb * 1024 * 1024)); then
  echo "peak RSS above the limit" >&2
  exit 1
fi
