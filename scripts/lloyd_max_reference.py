#!/usr/bin/env python3
"""Prints the high-precision golden values of tests/quant/lloyd_max_test.cc for the converged
Lloyd-Max quantizers of N(0,1), 1..5 bits, with mpmath at 40 digits (plain Lloyd steps until no
centroid moves by 1e-16, MSE by adaptive quadrature over each decision interval).
Independent of the C++ code (which uses Newton steps, double precision and a closed-form MSE).
Usage: python3 scripts/lloyd_max_reference.py   (needs mpmath; takes about a minute)
"""
import mpmath as mp

mp.mp.dps = 40


def converged(levels):
    # Start: quantiles of N(0, 3) (the high-resolution optimum's point density).
    c = [mp.sqrt(6) * mp.erfinv(2 * (k + mp.mpf(1) / 2) / levels - 1) for k in range(levels)]
    while True:
        t = [-mp.inf] + [(c[k] + c[k + 1]) / 2 for k in range(levels - 1)] + [mp.inf]
        nxt = [(mp.npdf(t[k]) - mp.npdf(t[k + 1])) / (mp.ncdf(t[k + 1]) - mp.ncdf(t[k])) for k in range(levels)]
        change = max(abs(a - b) for a, b in zip(nxt, c))
        c = nxt
        if change < mp.mpf("1e-16"):
            return c


def mse(c):
    t = [-mp.inf] + [(c[k] + c[k + 1]) / 2 for k in range(len(c) - 1)] + [mp.inf]
    return sum(mp.quad(lambda x, ck=c[k]: (x - ck) ** 2 * mp.npdf(x), [t[k], t[k + 1]]) for k in range(len(c)))


for bits in range(1, 6):
    c = converged(1 << bits)
    print(f"bits {bits}: mse {mp.nstr(mse(c), 15)}")
    print("  positive centroids:", ", ".join(mp.nstr(v, 12) for v in c[len(c) // 2:]))
