#!/usr/bin/env bash
# The quality study on the device tool's GPU machine, where `hlwq ppl --backend cuda` measures a row
# over the whole of WikiText-2 in seconds instead of about 12 minutes of 2-core CPU. A GGUF travels in
# parts, at most 64 MiB a call, so a study takes several calls on one warm machine (files are kept
# in /tmp/hlwq-device between them). Build first with scripts/build_portable.sh; split each model with
#   mkdir -p .device/MODEL && split -b 45M -d -a 2 FILE.gguf .device/MODEL/gguf.part
#   sha256sum FILE.gguf | cut -d' ' -f1 > .device/MODEL/gguf.sha256
# (MODEL: demo = models/SmolLM2-135M-Instruct.Q4_1.gguf, 3 parts; gemma3 = models/gemma-3-270m-q4_k_m.gguf, 6).
#
#   check        carry .device/bin .device/wiki.test.raw (and any parts): the GPU tests (kernels and
#                forward against the CPU), decode benches on 2 quiet cores (BENCH=0 skips them)
#   stage        carry some .device/MODEL/gguf.partNN and .device/MODEL/gguf.sha256: keeps them
#   study MODEL  (carry out/gpu-study/results for the demo: results of an earlier machine): joins the
#                GGUF once every part is there, then scripts/quality --backend cuda $STUDY_ARGS, stopping
#                before the call's 10 minutes end; repeat `study MODEL` until it reports "done"
#   peers MODEL:JOBS ...  (carry .device/pylib from scripts/pack_llama_cpp_python.sh, the models'
#                parts, and out/gpu-study/results for demo, out/gpu-gemma3/results for gemma3):
#                llama.cpp's rows (--rows llama.cpp: the F32 GGUF of the reference and its Q8_0,
#                Q4_K_M, Q4_0, IQ4_NL) on the CPU, JOBS single-thread processes per model, the models
#                side by side, each reference's distributions saved on a GPU of its own; in parts
#                of windows: no part starts after PEER_STOP seconds (430), the finished ones are kept
#                and merged, and the call ends by PEER_SECONDS (585); repeat it until no part is left.
#                PEER_ARGS (every model) and PEER_ARGS_<MODEL> add arguments, e.g. --rows to go row by row
#
# Every phase also keeps the parts it was carried. Each call leaves its results in $OUT
# (results.tar.gz: the study's JSON, tables and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=/tmp/hlwq-device
out=${OUT:-out/device}
mkdir -p "$stage" "$out"
export LD_LIBRARY_PATH=$stage/bin:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
phase=${1:?usage: device_gpu_study.sh check|stage|study MODEL}

# Whatever this call carried is kept for the calls after it: the binaries, the text, llama.cpp's
# Python packages, and each model's parts.
[[ -d .device/bin ]] && cp -r .device/bin "$stage/"
[[ -f .device/wiki.test.raw ]] && cp .device/wiki.test.raw "$stage/"
[[ -d .device/pylib ]] && rm -rf "$stage/pylib" && cp -r .device/pylib "$stage/pylib"
# Whatever parts this call carried, kept per model.
for sums in .device/*/gguf.sha256; do
  [[ -f $sums ]] || continue
  model=$(basename "$(dirname "$sums")")
  mkdir -p "$stage/$model"
  cp "$(dirname "$sums")"/gguf.* "$stage/$model/"
done

# Joins stage/MODEL/MODEL.gguf from its parts once all are there (checked against gguf.sha256).
join_parts() {
  local model=$1 gguf=$stage/$1/$1.gguf
  [[ -f $gguf ]] && return 0
  cat "$stage/$model"/gguf.part* >"$gguf.partial"
  if ! echo "$(cut -d' ' -f1 "$stage/$model/gguf.sha256")  $gguf.partial" | sha256sum -c --quiet - 2>/dev/null; then
    echo "$model: parts missing or damaged (have: $(cd "$stage/$model" && ls gguf.part* | tr '\n' ' '))" >&2
    rm -f "$gguf.partial"
    return 1
  fi
  mv "$gguf.partial" "$gguf"
}

case "$phase" in
  check)
    echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
    # The test binary reads fixtures from the source path it was built in and runs build/hlwq.
    if [[ ! -e /work/main ]]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
    mkdir -p build && ln -sf "$stage/bin/hlwq" build/hlwq
    "$stage/bin/hlwq_tests" --gtest_filter='CudaDevice.*:CudaKernels.*:*CudaRunner*:BackendOps*:VocabularyRow.*:KlDivergence*:LinearForward.*:LinearWeight.*:*Fitted*' \
      2>&1 | tee "$out/gpu-tests.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |max \|gpu" || true
    [[ ${BENCH:-1} == 0 ]] && exit 0
    for shape in smollm2-135m llama3-1b; do
      for format in bf16 hlwq-q4 hlwq-q5 mlx4 int4; do
        "$stage/bin/hlwq" bench --synthetic $shape --format $format -p 64 -n 48 --repetitions 3 --threads 2 --json \
          >"$out/bench-$shape-$format.json"
      done
    done
    python3 - "$out" <<'PY'
import glob, json, os, sys
print(f"{'shape-format':28} {'decode tok/s':>12} {'roofline':>9} {'fraction':>8} {'GB/s':>6} {'prefill tok/s':>13}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "bench-*.json"))):
    r = json.load(open(path))
    print(f"{os.path.basename(path)[6:-5]:28} {r['decode_tokens_per_second']:12.1f} "
          f"{r['decode_roofline_tokens_per_second']:9.1f} {r['decode_roofline_fraction']:8.2f} "
          f"{r['read_bandwidth_gb_per_second']:6.1f} {r['prefill_tokens_per_second']:13.1f}")
PY
    ;;
  stage)
    ls -la "$stage"/*/
    ;;
  study)
    model=${2:?usage: device_gpu_study.sh study MODEL}
    gguf=$stage/$model/$model.gguf  # the study names recipes after the file: "<- demo.gguf"
    join_parts "$model" || exit 1
    quality=$stage/quality-$model
    # The reference's saved distributions take tens of GB; one model's at a time fit the disk.
    for logits in "$stage"/quality-*/models/reference.*.logits; do
      [[ -f $logits && $logits != "$quality"/* ]] && rm -f "$logits"
    done
    # Results of an earlier machine (carry out/gpu-study/results): the study measures only what is missing.
    if [[ $model == demo && -d out/gpu-study/results && ! -d $quality/results ]]; then
      mkdir -p "$quality" && cp -r out/gpu-study/results "$quality/"
    fi
    status=0
    timeout "${STUDY_SECONDS:-500}" python3 scripts/quality --out "$quality" --hlwq "$stage/bin/hlwq" \
      --gguf "$gguf" --text "$stage/wiki.test.raw" --backend cuda --skip-llama-cpp --jobs 1 \
      --threads "$(nproc)" --bench-threads 2 ${STUDY_ARGS:-} 2>&1 | tail -60 || status=$?
    [[ $status == 0 ]] && echo "done" || echo "stopped (status $status): call study again"
    tar -czf "$out/results-$model.tar.gz" -C "$quality" results logs $(cd "$quality" && ls quality.* 2>/dev/null)
    df -h /tmp | tail -1
    ;;
  peers)
    shift
    [[ $# -gt 0 ]] || { echo "usage: device_gpu_study.sh peers MODEL:JOBS ..." >&2; exit 2; }
    export PYTHONPATH=$stage/pylib
    python3 -c "import llama_cpp, gguf" || { echo "no llama_cpp: carry .device/pylib once" >&2; exit 1; }
    echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/ {print $2}') GB"
    gpu=0 pids=() gpus=$( (nvidia-smi -L 2>/dev/null || true) | wc -l)
    for spec in "$@"; do
      model=${spec%%:*} jobs=${spec#*:}
      gguf=$stage/$model/$model.gguf
      join_parts "$model" || exit 1
      quality=$stage/quality-$model
      results=out/gpu-study/results
      [[ $model == demo ]] || results=out/gpu-$model/results
      if [[ -d $results && ! -d $quality/results ]]; then mkdir -p "$quality" && cp -r "$results" "$quality/"; fi
      # The demo's rows over the whole file; Gemma 3's over the windows of its report (100 a protocol).
      # Parts of about 75 s (10 windows) where they can be, so that little is lost at the call's end.
      extra=(--llama-cpp-part-windows 40,10)
      [[ $model == gemma3 ]] && extra=(--max-windows 100 --main-gain norm --llama-cpp-part-windows 10)
      CUDA_VISIBLE_DEVICES=$gpu timeout "${PEER_SECONDS:-585}" python3 scripts/quality --out "$quality" \
        --stop-after "${PEER_STOP:-430}" \
        --hlwq "$stage/bin/hlwq" --gguf "$gguf" --text "$stage/wiki.test.raw" --backend "${BACKEND:-cuda}" --rows llama.cpp \
        --jobs "$jobs" --threads 1 --skip-bench "${extra[@]}" ${PEER_ARGS:-} $(printenv "PEER_ARGS_$model" || true) \
        >"$out/peers-$model.log" 2>&1 &
      pids+=($!) gpu=$(( (gpu + 1) % (gpus > 0 ? gpus : 1) ))
    done
    index=0
    for spec in "$@"; do
      model=${spec%%:*} status=0
      wait "${pids[$index]}" || status=$?
      index=$((index + 1))
      echo "== $model: $( [[ $status == 0 ]] && echo "ended" || echo "stopped (status $status)"): call peers again while parts are left"
      grep -v "windows .* done (" "$out/peers-$model.log" | tail -25
      echo "parts kept: $(ls "$stage/quality-$model/results/parts" 2>/dev/null | grep -c '\.json$')"
      tar -czf "$out/results-$model.tar.gz" -C "$stage/quality-$model" results logs \
        $(cd "$stage/quality-$model" && ls quality.* 2>/dev/null)
    done
    df -h /tmp | tail -1
    ;;
  *)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
esac
