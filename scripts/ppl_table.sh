#!/usr/bin/env bash
# The demo model's perplexity and KL-divergence table over a whole text (WikiText-2's test split):
# reference (the GGUF's weights dequantized to F32), HLWQ Q5/Q4/Q3 run natively, Q5 -> MLX 4-bit
# g64, MLX 4-bit g64 direct, CT-INT4 g64 direct and Q5 -> CT-INT4 g64, all with the llama.cpp
# protocol (ctx 512). The reference runs first and saves its distributions; the others then run
# side by side (JOBS at a time, THREADS each) and compare with it. It made the 200-window table of
# docs/NOTES.md on the GPU machine; scripts/quality is the full study (more rows, both protocols).
#
#   scripts/ppl_table.sh GGUF TEXT OUT_DIR [HLWQ_BINARY]
# Environment: JOBS (default 4), THREADS (default 2), REFERENCE_THREADS (default: all cores),
# MAX_WINDOWS (default 0 = the whole text). Writes OUT_DIR/<model>.json and OUT_DIR/table.md.
set -euo pipefail
gguf=$1 text=$2 out=$3 hlwq=${4:-build/hlwq}
jobs=${JOBS:-4} threads=${THREADS:-2} reference_threads=${REFERENCE_THREADS:-$(nproc)}
windows=${MAX_WINDOWS:-0}
models=$out/models
mkdir -p "$out" "$models"
run() { echo "+ $*" >&2; "$@"; }

[[ -d $models/reference ]] || run "$hlwq" import "$gguf" -o "$models/reference" --dtype f32
for bits in 5 4 3; do
  [[ -d $models/hlwq-q$bits ]] || run "$hlwq" quantize -m "$models/reference" -o "$models/hlwq-q$bits" --bits $bits
done
[[ -d $models/hlwq-q5-mlx4 ]] || run "$hlwq" export -m "$models/hlwq-q5" -o "$models/hlwq-q5-mlx4" --to mlx --bits 4 --group-size 64
[[ -d $models/mlx4-direct ]] || run "$hlwq" export -m "$models/reference" -o "$models/mlx4-direct" --to mlx --bits 4 --group-size 64
[[ -d $models/hlwq-q5-int4 ]] || run "$hlwq" export -m "$models/hlwq-q5" -o "$models/hlwq-q5-int4" --to ct-int4 --group-size 64
[[ -d $models/int4-direct ]] || run "$hlwq" export -m "$models/reference" -o "$models/int4-direct" --to ct-int4 --group-size 64

ppl() {  # model threads extra-args...
  local model=$1 n=$2
  shift 2
  "$hlwq" ppl -m "$models/$model" -f "$text" --ctx 512 --max-windows "$windows" --threads "$n" --json "$@" \
    >"$out/$model.json.partial" 2>"$out/$model.log" && mv "$out/$model.json.partial" "$out/$model.json"
}
echo "+ reference ($reference_threads threads)" >&2
ppl reference "$reference_threads" --save-logits "$models/reference.logits"
echo "+ 7 models, $jobs at a time, $threads threads each" >&2
printf '%s\n' hlwq-q5 hlwq-q4 hlwq-q3 hlwq-q5-mlx4 mlx4-direct hlwq-q5-int4 int4-direct |
  xargs -P "$jobs" -I{} bash -c "$(declare -f ppl); hlwq='$hlwq' models='$models' text='$text' windows='$windows' out='$out'; ppl {} $threads --kld-base '$models/reference.logits'"

python3 - "$out" "$models" <<'PY'
import json, os, sys
out, models = sys.argv[1], sys.argv[2]
rows = ["reference", "hlwq-q5", "hlwq-q4", "hlwq-q3", "hlwq-q5-mlx4", "mlx4-direct", "hlwq-q5-int4", "int4-direct"]
def size(name):
    folder = os.path.join(models, name)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors"))
lines = ["| model | file MB | PPL | ± | mean KLD | ± | p99 KLD | top-1 | tokens | tok/s |", "|---|---|---|---|---|---|---|---|---|---|"]
for name in rows:
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        lines.append(f"| {name} | missing |"); continue
    r = json.load(open(path)); k = r.get("kl_divergence")
    kld = f"{k['mean']:.4f} | {k['mean_stderr']:.4f} | {k['p99']:.3f} | {100*k['top1_agreement']:.2f}%" if k else "– | – | – | –"
    lines.append(f"| {name} | {size(name)/1e6:.1f} | {r['perplexity']:.4f} | {r['perplexity_stderr']:.4f} | {kld} | {r['tokens_scored']} | {r['tokens_per_second']:.0f} |")
table = "\n".join(lines)
open(os.path.join(out, "table.md"), "w").write(table + "\n")
print(table)
PY
