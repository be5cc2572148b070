#!/usr/bin/env bash
# The CUDA runtime on the device tool's GPU machine in one call: the GPU tests (kernels against the
# CPU reference, the model runner on CUDA against the CPU runner), then `hlwq bench --backend cuda`
# on synthetic Llama-3-8B-shaped models in every format (with and without quantized embeddings),
# decode at longer contexts, and the peers (PyTorch's INT4 kernel, transformers BF16), a table last.
#
# Build here first: scripts/build_portable.sh (binaries in .device/bin), then call with
# carry [".device/bin"]:  bash scripts/device_cuda_runtime.sh [tests] [kernels] [bench] [hybrid] [versions]
# [context] [peers] [profile] [stalls] [serve] (no argument: tests bench hybrid context peers; `kernels` needs linear_versions built by build_portable.sh).
# Logs and JSON land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/device}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.device/bin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
phases=${*:-tests bench hybrid context peers}
hlwq=.device/bin/hlwq
echo "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"

has() { [[ " $phases " == *" $1 "* ]]; }

if has tests; then
  # The test binary reads fixtures from the source path it was built in and runs build/hlwq.
  if [[ ! -e /work/main ]]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
  mkdir -p build && ln -sf "$PWD/$hlwq" build/hlwq
  # The kernel tests (their own binary), then the runner and the ops table on CUDA against the CPU.
  timeout "${TEST_SECONDS:-200}" .device/bin/hlwq_gpu_tests >"$out/gpu-kernel-tests.log" 2>&1 || echo "hlwq_gpu_tests: exit $?"
  timeout "${TEST_SECONDS:-200}" .device/bin/hlwq_tests --gtest_filter="${GPU_TESTS:-*Cuda*:*BackendOps*}" \
    >"$out/gpu-runner-tests.log" 2>&1 || echo "hlwq_tests (cuda): exit $?"
  for log in "$out"/gpu-kernel-tests.log "$out"/gpu-runner-tests.log; do
    grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error" "$log" | head -40 || true
  done
fi

if has kernels; then
  # Every decode kernel version and the prefill paths on Llama-3-8B layer shapes, checked against
  # the CPU reference and timed beside the card's read bandwidth (bench/cuda/linear_versions.cc).
  # KERNEL_ARGS: e.g. "--only down" for one shape.
  timeout "${KERNEL_SECONDS:-240}" .device/bin/linear_versions ${KERNEL_ARGS:-} >"$out/linear-versions.log" 2>&1 \
    || echo "linear_versions: exit $?"
  sed -n '/^== decode GEMV/,$p' "$out/linear-versions.log"
fi

bench() {  # name, then hlwq bench arguments
  local name=$1
  shift
  if ! timeout 240 "$hlwq" bench --backend cuda --json "$@" >"$out/bench-$name.json" 2>"$out/bench-$name.err"; then
    echo "bench $name failed: $(tail -1 "$out/bench-$name.err")"
  fi
}

if has bench; then
  # FORMATS narrows the list; EMBEDDINGS=0 leaves out the --quantize-embeddings runs.
  for format in ${FORMATS:-bf16 hlwq-q4 hlwq-q5 mlx4 int4}; do
    bench "llama3-8b-$format" --synthetic llama3-8b --format "$format" -p 512 -n 128 --repetitions 2
    if [[ ${EMBEDDINGS:-1} != 0 ]]; then
      bench "llama3-8b-$format-emb" --synthetic llama3-8b --format "$format" --quantize-embeddings -p 512 -n 128
    fi
  done
fi

if has hybrid; then
  # Qwen3.5-9B's shape (3 gated delta-net layers to 1 gated attention layer), as the seed runs it.
  for format in bf16 hlwq-q4 hlwq-q5 mlx4; do
    bench "qwen3.5-9b-$format" --synthetic qwen3.5-9b --format "$format" -p 512 -n 128
  done
fi

if has versions; then
  # Decode end to end with each kernel version forced (HLWQ_GEMV_VERSION), side by side; VERSIONS
  # picks the versions (default 1 3), VERSION_FORMATS the formats, QWEN=1 adds Qwen3.5-9B HLWQ Q4.
  for version in ${VERSIONS:-1 3}; do
    for format in ${VERSION_FORMATS:-hlwq-q4 hlwq-q5 mlx4 int4 bf16}; do
      HLWQ_GEMV_VERSION=$version bench "v$version-llama3-8b-$format" --synthetic llama3-8b --format "$format" \
        -p 512 -n 128
    done
    if [[ ${QWEN:-0} == 1 ]]; then
      HLWQ_GEMV_VERSION=$version bench "v$version-qwen3.5-9b-hlwq-q4" --synthetic qwen3.5-9b --format hlwq-q4 \
        -p 512 -n 128
    fi
  done
fi

if has context; then
  for context in 4096 16384; do
    bench "llama3-8b-hlwq-q4-ctx$context" --synthetic llama3-8b --format hlwq-q4 -p "$context" -n 64
  done
fi

if has profile; then
  # Where a decode step's time goes: every kernel of a short Llama-3-8B HLWQ Q4 run under Nsight
  # Compute (kernels serialized, each timed alone), summed by kernel name, largest first.
  timeout 150 ncu --csv --metrics gpu__time_duration.sum --print-units base -c 2500 \
    "$hlwq" bench --backend cuda --synthetic llama3-8b --format "${PROFILE_FORMAT:-hlwq-q4}" -p 8 -n 2 \
    >"$out/profile.csv" 2>"$out/profile.err" || echo "profile: exit $?"
  python3 - "$out/profile.csv" <<'PY' | tee "$out/profile.txt"
import collections, csv, sys
rows = [line for line in open(sys.argv[1]) if line.startswith('"')]
totals, counts = collections.Counter(), collections.Counter()
for row in csv.DictReader(rows):
    if row.get("Metric Name") == "gpu__time_duration.sum":
        totals[row["Kernel Name"][:70]] += float(row["Metric Value"].replace(",", "")) / 1e3  # ncu writes 1,393,312
        counts[row["Kernel Name"][:70]] += 1
whole = sum(totals.values())
print(f"{len(counts)} kernels, {sum(counts.values())} launches, {whole:.0f} us in all")
for name, us in totals.most_common(25):
    print(f"{us:10.0f} us {100 * us / whole:5.1f}% {counts[name]:6d} x  {name}")
PY
fi

if has stalls; then
  # Why the batch-1 decode products of gate/up (14336 x 4096) stop near 0.3 of the read bandwidth
  # where BF16's reaches 0.8: Nsight Compute on the first launch of each kernel named below (HLWQ
  # Q4 versions 1 and 4, 4-bit MLX version 1, BF16) in `linear_versions --only gate`: throughput,
  # occupancy, memory and warp-state sections and the average stall reasons per issued instruction.
  # ncu's demangled names spell template arguments as (int)1. STALL_KERNELS (regexes separated by
  # ';') replaces the list.
  kernels=('hlwq_gemv_kernel<.int.4, .int.16, .int.1>' 'hlwq_pair_gemv_kernel<.int.1>' 'nibble_pair_gemv_kernel<.int.1>'
    'contiguous_gemv_kernel<.*AffineFormat<.int.4>, .int.1>' 'contiguous_gemv_kernel<.*DenseFormat<.*2>, .int.1>')  # 2: bf16
  if [[ -n ${STALL_KERNELS:-} ]]; then IFS=';' read -ra kernels <<<"$STALL_KERNELS"; fi
  for kernel in "${kernels[@]}"; do
    name=$(echo "$kernel" | tr -c 'a-z0-9_\n' '_')
    timeout 120 ncu --clock-control none --kernel-name-base demangled --kernel-name "regex:$kernel" --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
      --section WarpStateStats --section SchedulerStats \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
      .device/bin/linear_versions --only gate >"$out/stalls-$name.txt" 2>&1 || echo "stalls $kernel: exit $?"
    echo "== $kernel"
    grep -E 'contiguous_gemv|hlwq_.*kernel|nibble_pair|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth|Eligible Warps|Active Warps Per|Issued Warp|Warp Cycles Per Issued|No Eligible|issue_stalled' \
      "$out/stalls-$name.txt" | grep -vE 'issue_stalled_.*[^0-9.]0(\.0+)?$' | head -60
  done
fi

if has serve; then
  # `hlwq serve --backend cuda` at 1, 4 and 16 streams on a Llama-3-8B-shaped HLWQ Q4 model of random
  # weights (written by `bench --save`) with Llama-3's tokenizer, carried as
  # .device/llama3-tokenizer.tar.xz (made here: a folder llama3-tokenizer holding a copy of
  # ../shared/data/tokenizers/llama3/*, then `tar cJf .device/llama3-tokenizer.tar.xz -C .device llama3-tokenizer`).
  model_work=/tmp/hlwq-serve-model
  rm -rf "$model_work"
  if timeout 300 "$hlwq" bench --backend cuda --synthetic llama3-8b --format hlwq-q4 --save "$model_work" -p 4 -n 4 \
      >"$out/serve-model.log" 2>&1; then
    served=$(dirname "$(ls -d "$model_work"/*hlwq-q4*/config.json | head -1)")
    tar xJf .device/llama3-tokenizer.tar.xz -C "$model_work" && cp "$model_work"/llama3-tokenizer/* "$served"/
    timeout 300 python3 scripts/serve_throughput.py --model "$served" --backend cuda --ctx 1024 --threads 4 \
      | tee "$out/serve-throughput.md" || echo "serve_throughput: exit $?"
  else
    echo "serve: writing the model failed: $(tail -2 "$out/serve-model.log")"
  fi
fi

if has peers; then
  PYTHONUNBUFFERED=1 timeout 300 python3 scripts/peer_gpu_bench.py int4 hf-bf16 | tee "$out/peers.jsonl" || true
fi

python3 - "$out" <<'PY'
import glob, json, os, sys
print(f"{'bench':34} {'prefill tok/s':>13} {'decode tok/s':>12} {'MB/token':>9} {'GB/s':>6} {'roofline':>8} {'weights GB':>10} {'peak GB':>8}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "bench-*.json"))):
    try:
        r = json.load(open(path))
    except ValueError:
        continue
    m = r["memory_bytes"]
    name = os.path.basename(path)[6:-5]
    print(f"{name:34} {r['prefill_tokens_per_second']:13.1f} {r['decode_tokens_per_second']:12.2f} "
          f"{r['decode_bytes_per_token'] / 1e6:9.1f} {r['read_bandwidth_gb_per_second']:6.0f} "
          f"{r['decode_roofline_fraction']:8.2f} {m['weights'] / 1e9:10.2f} {m['peak_in_use'] / 1e9:8.2f}")
PY

# The tests' verdicts last, where a truncated log still shows them.
if has tests; then grep -hE "^\[  (PASSED|FAILED) " "$out"/gpu-kernel-tests.log "$out"/gpu-runner-tests.log || true; fi
# The device tool brings back only a few files: on it ($OUT set), everything goes into one archive.
if [[ -n ${OUT:-} ]]; then
  (cd "$out" && files=$(ls | grep -v '^logs.tar.xz$' || true) && [[ -z $files ]] || tar cJf logs.tar.xz --remove-files $files)
fi

