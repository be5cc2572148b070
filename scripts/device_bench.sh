#!/usr/bin/env bash
# On the device tool's GPU machine (16 quiet cores; the development VM is shared): decode and
# prefill speed of synthetic models of real shapes on 2 threads, for every weight format, with the
# measured read bandwidth and roofline fraction; plus prefill at all cores for the demo's shape.
# Needs .device/bin from scripts/build_portable.sh. Writes $OUT/bench-*.json and prints a table.
set -euo pipefail
out=${OUT:-out/device}
mkdir -p "$out"
export LD_LIBRARY_PATH=.device/bin
hlwq=.device/bin/hlwq
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(ldd --version | head -1)"
for shape in smollm2-135m llama3-1b; do
  for format in bf16 hlwq-q4 hlwq-q5 mlx4 int4; do
    $hlwq bench --synthetic $shape --format $format -p 128 -n 64 --repetitions 3 --threads 2 --json \
      >"$out/bench-$shape-$format.json"
  done
done
$hlwq bench --synthetic smollm2-135m --format bf16 -p 512 -n 16 --threads "$(nproc)" --json >"$out/bench-smollm2-135m-bf16-allcores.json"
python3 - "$out" <<'PY'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "bench-*.json"))):
    r = json.load(open(path))
    print(os.path.basename(path), json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}))
PY
