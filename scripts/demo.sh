#!/usr/bin/env bash
# The end-to-end demo on SmolLM2-135M-Instruct: import the GGUF, quantize to HLWQ Q5, export
# BF16 and MLX 4-bit from the HLWQ model and MLX 4-bit directly, and inspect each against the
# reference (the GGUF's weights dequantized to F32). Outputs go to out/demo/ (recreated).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
gguf=$(scripts/fetch_demo_model.sh)
hlwq=build/hlwq
out=out/demo
rm -rf "$out"
mkdir -p "$out"

run() { echo "+ $*" >&2; "$@"; }
run $hlwq import "$gguf" -o $out/reference --dtype f32
run $hlwq quantize -m $out/reference -o $out/hlwq-q5 --bits 5
run $hlwq export -m $out/hlwq-q5 -o $out/hlwq-q5-bf16 --to bf16
run $hlwq export -m $out/hlwq-q5 -o $out/hlwq-q5-mlx4 --to mlx --bits 4 --group-size 64
run $hlwq export -m $out/reference -o $out/mlx4-direct --to mlx --bits 4 --group-size 64

for model in hlwq-q5 hlwq-q5-bf16 hlwq-q5-mlx4 mlx4-direct; do
  echo
  echo "== $model vs reference"
  $hlwq inspect -m $out/$model --ref $out/reference | tail -n 4
done

# Run the models (CPU engine) and measure perplexity next to the reference. WikiText-2 when
# ../shared/data is there, else this repository's docs (a text every checkout has). The demo
# scores a few windows to stay quick; `hlwq ppl` without --max-windows scores the whole file.
text=../shared/data/wikitext-2-raw/wiki.test.raw
if [[ ! -f $text ]]; then
  text=$out/docs.txt
  cat README.md docs/*.md > "$text"
fi
windows=${DEMO_PPL_WINDOWS:-4}
echo
echo "== generation (greedy, 24 tokens)"
for model in reference hlwq-q5 hlwq-q5-mlx4; do
  printf '%-14s ' "$model:"
  $hlwq run -m $out/$model -p "The capital of France is" -n 24 2>/dev/null | tr '\n' ' '
  echo
done
echo
echo "== perplexity on $(basename "$text"), llama.cpp protocol, ctx 512, first $windows windows"
$hlwq ppl -m $out/reference -f "$text" --max-windows "$windows" --save-logits $out/reference.logits | head -n 1
for model in hlwq-q5 hlwq-q5-mlx4 mlx4-direct; do
  $hlwq ppl -m $out/$model -f "$text" --max-windows "$windows" --kld-base $out/reference.logits | head -n 2
done
