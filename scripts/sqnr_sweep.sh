#!/usr/bin/env bash
# Quantizes a dense model folder at HLWQ Q2..Q8 and prints the measured weight SQNR of each
# (element-weighted over the quantized tensors) next to the Gaussian theory -10 log10(MSE of the
# Lloyd-Max codebook). Usage: scripts/sqnr_sweep.sh REFERENCE_DIR [extra quantize flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
reference=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-5s %8s %10s %12s %10s %8s\n" bits bpw sqnr_dB theory_dB delta_dB seconds
for bits in 2 3 4 5 6 7 8; do
  summary=$(build/hlwq quantize -m "$reference" -o "$work/q$bits" --bits "$bits" --json "$@")
  report=$(build/hlwq inspect -m "$work/q$bits" --ref "$reference" --json)
  python3 - "$bits" "$work/q$bits/config.json" "$summary" "$report" <<'PY'
import json, math, sys
from math import erf, exp, pi, sqrt
bits = int(sys.argv[1])
centroids = json.load(open(sys.argv[2]))["quantization_config"]["codebook_centroids"]
summary = json.loads(sys.argv[3]); report = json.loads(sys.argv[4])
Phi = lambda x: 0.5 * (1 + erf(x / sqrt(2)))
phi = lambda x: exp(-x * x / 2) / sqrt(2 * pi)
# E[(z - c(z))^2] for z ~ N(0,1) with midpoint thresholds, integrated in closed form per cell.
edges = [-math.inf] + [(a + b) / 2 for a, b in zip(centroids, centroids[1:])] + [math.inf]
mse = 0.0
for c, lo, hi in zip(centroids, edges, edges[1:]):
    p = Phi(hi) - Phi(lo)
    m1 = phi(lo) - phi(hi)                     # integral of z phi(z)
    m2 = p + (lo * phi(lo) if lo != -math.inf else 0) - (hi * phi(hi) if hi != math.inf else 0)
    mse += m2 - 2 * c * m1 + c * c * p
theory = -10 * math.log10(mse)
print(f"Q{bits:<4d} {report['bits_per_weight']:8.3f} {report['sqnr_db']:10.2f} {theory:12.2f} "
      f"{report['sqnr_db'] - theory:10.2f} {summary['seconds']:8.2f}")
PY
  rm -rf "$work/q$bits"
done
