#!/usr/bin/env python3
"""Prints the golden values of tests/quant/lloyd_max_test.cc for CodebookKind::polarquant_compat.

A transcription, in numpy, of the published reference's codebook procedure
(github.com/caiovicentino/polarengine-vllm, polarengine_vllm/utils.py, compute_lloyd_max_centroids):
thresholds np.linspace(-4, 4, levels + 1) with the ends set to -inf/+inf, then 100 rounds of
"centroid = E[Z | interval] in float64, thresholds = midpoints", centroids returned as float32.
scipy.stats.norm is replaced by math.erfc (scipy is not needed; the float32 results agree).
Usage: python3 scripts/polarquant_compat_codebook.py
"""
import math

import numpy as np


def cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def pdf(x):
    return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def compat_centroids(levels, iterations=100):
    boundaries = np.linspace(-4, 4, levels + 1)
    boundaries[0], boundaries[-1] = -np.inf, np.inf
    centroids = np.zeros(levels)
    for _ in range(iterations):
        for i in range(levels):
            a, b = boundaries[i], boundaries[i + 1]
            prob = cdf(b) - cdf(a)
            centroids[i] = (pdf(a) - pdf(b)) / prob if prob > 1e-10 else (a + b) / 2
        boundaries = np.concatenate([[-np.inf], (centroids[:-1] + centroids[1:]) / 2, [np.inf]])
    return centroids.astype(np.float32)


def gaussian_mse(centroids):
    c = centroids.astype(np.float64)
    edges = np.concatenate([[-np.inf], (c[:-1] + c[1:]) / 2, [np.inf]])
    total = 0.0
    for k in range(len(c)):
        a, b = edges[k], edges[k + 1]
        p = cdf(b) - cdf(a)
        xa = 0.0 if math.isinf(a) else a * pdf(a)
        xb = 0.0 if math.isinf(b) else b * pdf(b)
        total += (p + xa - xb) - 2 * c[k] * (pdf(a) - pdf(b)) + c[k] ** 2 * p
    return total


for bits in range(1, 9):
    centroids = compat_centroids(1 << bits)
    print(f"// bits {bits}: mse {gaussian_mse(centroids):.6g}")
    if bits in (2, 3, 5):
        print("{" + ", ".join(f"{v:.9g}f" for v in centroids) + "}")
