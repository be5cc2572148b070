#!/usr/bin/env bash
# The quality study on the device tool's GPU machine, where `hlwq ppl --backend cuda` measures a row
# over the whole of WikiText-2 in seconds instead of about 12 minutes of 2-core CPU. The demo GGUF
# (98 MB) travels in parts, at most 64 MiB a call, so it takes three calls on one warm machine
# (files are kept in /tmp/hlwq-device between them); build first with scripts/build_portable.sh and
# split with `split -b 45M -d -a 2 GGUF .device/gguf.part` (sha256 in .device/gguf.sha256):
#
#   check  carry .device/bin .device/wiki.test.raw .device/gguf.part02 .device/gguf.sha256:
#          the GPU tests (kernels and forward against the CPU), decode benches on 2 quiet cores
#   stage  carry .device/gguf.part00
#   study  carry .device/gguf.part01 (and out/gpu-study, results of an earlier machine): joins the
#          GGUF, then scripts/quality --backend cuda $STUDY_ARGS, stopping before the call's 10
#          minutes end; repeat `study` (no carry) until it reports "done"
#
# Each call leaves its results in $OUT (results.tar.gz: the study's JSON, tables and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=/tmp/hlwq-device
out=${OUT:-out/device}
mkdir -p "$stage" "$out"
export LD_LIBRARY_PATH=$stage/bin:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
phase=${1:?usage: device_gpu_study.sh check|stage|study}

case "$phase" in
  check)
    cp -r .device/bin "$stage/"
    cp .device/wiki.test.raw .device/gguf.part02 .device/gguf.sha256 "$stage/"
    echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
    # The test binary reads fixtures from the source path it was built in and runs build/hlwq.
    if [[ ! -e /work/main ]]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
    mkdir -p build && ln -sf "$stage/bin/hlwq" build/hlwq
    "$stage/bin/hlwq_tests" --gtest_filter='CudaDevice.*:CudaKernels.*:*GpuForward*:VocabularyRow.*:KlDivergence*' \
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
    cp .device/gguf.part00 "$stage/"
    ls -la "$stage"
    ;;
  study)
    if [[ ! -f $stage/demo.gguf ]]; then
      cp .device/gguf.part01 "$stage/"
      cat "$stage"/gguf.part00 "$stage"/gguf.part01 "$stage"/gguf.part02 >"$stage/demo.gguf.partial"
      (cd "$stage" && echo "$(cut -d' ' -f1 gguf.sha256)  demo.gguf.partial" | sha256sum -c -)
      mv "$stage/demo.gguf.partial" "$stage/demo.gguf"
    fi
    # Results of an earlier machine (carry out/gpu-study): the study measures only what is missing.
    if [[ -d out/gpu-study/results && ! -d $stage/quality/results ]]; then
      mkdir -p "$stage/quality" && cp -r out/gpu-study/results "$stage/quality/"
    fi
    status=0
    timeout "${STUDY_SECONDS:-500}" python3 scripts/quality --out "$stage/quality" --hlwq "$stage/bin/hlwq" \
      --gguf "$stage/demo.gguf" --text "$stage/wiki.test.raw" --backend cuda --skip-llama-cpp --jobs 1 \
      --threads "$(nproc)" --bench-threads 2 ${STUDY_ARGS:-} 2>&1 | tail -60 || status=$?
    [[ $status == 0 ]] && echo "done" || echo "stopped (status $status): call study again"
    tar -czf "$out/results.tar.gz" -C "$stage/quality" results logs $(cd "$stage/quality" && ls quality.* 2>/dev/null)
    df -h /tmp | tail -1
    ;;
  *)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
esac
