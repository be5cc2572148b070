#!/usr/bin/env bash
# The paper's ablation as weight SQNR: quantizes a dense model folder with the four variants
# (a) absmax, (b) + Hadamard, (c) + Lloyd-Max only, (d) both (docs/FORMAT.md) at each bit width
# and prints `hlwq inspect`'s element-weighted SQNR against the reference.
# Usage: scripts/ablation_sweep.sh REFERENCE_DIR [BITS...] (default 5 4); extra quantize flags in
# $HLWQ_FLAGS (e.g. "--block 64").
set -euo pipefail
cd "$(dirname "$0")/.."
reference=$1
shift
bits_list=("${@:-5 4}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A variants=(
  [a]="--rotation none --codebook uniform"
  [b]="--rotation hadamard --codebook uniform"
  [c]="--rotation none --codebook lloyd-max"
  [d]="--rotation hadamard --codebook lloyd-max"
)
printf "%-5s %-8s %8s %10s\n" bits variant bpw sqnr_dB
for bits in ${bits_list[*]}; do
  for variant in a b c d; do
    # shellcheck disable=SC2086  # the flag strings are meant to split
    build/hlwq quantize -m "$reference" -o "$work/q" --bits "$bits" ${variants[$variant]} ${HLWQ_FLAGS:-} >/dev/null
    build/hlwq inspect -m "$work/q" --ref "$reference" --json |
      python3 -c "import json, sys; r = json.load(sys.stdin); print(f\"Q$bits   ($variant)      {r['bits_per_weight']:8.3f} {r['sqnr_db']:10.2f}\")"
    rm -rf "$work/q"
  done
done
