#!/usr/bin/env python3
"""Regenerates the golden fixtures of tests/quant/affine_quant_test.cc and int4_symmetric_test.cc:
tests/fixtures/affine/ from the real mlx.core.quantize / mx.dequantize (pip mlx, CPU backend) and
tests/fixtures/int4_symmetric/ from the real compressed-tensors pack-quantized compressor (pip
compressed-tensors, needs torch). A family whose library is missing is left as it is.

Layout (tests/fixtures/*/README.md says the same): manifest.json names the input per dtype and
one .bin per case. Inputs are rows*columns uint16 bit patterns of the dtype. An MLX case file is
packed uint32 [rows * columns*bits/32] | scales | biases (uint16 [rows * columns/group]) |
dequantized (uint16 [rows * columns]); an INT4 case file is packed int32 [rows * columns/8] |
scales (uint16) | dequantized (uint16, compressed-tensors' decompress). All little-endian.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_quantizers  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ROWS, COLUMNS = 12, 256
DTYPES = ("BF16", "F16")
MLX_BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (32, 64, 128)


def round_to_dtype(values_f32, dtype):
    """Rounds float32 to the nearest dtype value (ties to even); returns float32 and the uint16 bits."""
    values_f32 = np.asarray(values_f32, dtype=np.float32)
    if dtype == "F16":
        half = values_f32.astype(np.float16)
        return half.astype(np.float32), half.view(np.uint16)
    words = values_f32.view(np.uint32).astype(np.uint64)
    bits = ((words + 0x7FFF + ((words >> 16) & 1)) >> 16).astype(np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32), bits


def make_input(seed):
    """Rows chosen to reach every branch of the scale/bias rules, then ordinary Gaussian rows."""
    rng = np.random.default_rng(seed)
    normal = lambda scale=0.02: rng.normal(0.0, scale, COLUMNS)  # noqa: E731
    rows = [
        np.abs(normal()) + 0.001,  # all positive: the edge is the maximum
        -(np.abs(normal()) + 0.001),  # all negative: the edge is the minimum
        np.repeat([0.37, -1.25], COLUMNS // 2),  # constant groups: the scale floor (1e-7)
        np.zeros(COLUMNS),  # zero groups
        np.where(rng.random(COLUMNS) < 0.3, 0.0, normal()),  # groups containing exact zeros
        normal(3e-8),  # below half a floor step: bias 0 (BF16), subnormal or zero (F16)
        rng.integers(-8, 9, COLUMNS) * 2.0**-5,  # dyadic values: exact ties in the code rounding
        np.where(np.arange(COLUMNS) % 32 == 5, 50.0, 1.0) * normal(),  # one outlier per 32
        rng.standard_t(3, COLUMNS) * 0.01,  # heavy tails
        normal(100.0),  # large magnitudes
        normal(),
        normal(),
    ]
    return np.stack(rows).astype(np.float32)


def to_dtype_bits(values_f32, dtype):
    return round_to_dtype(values_f32, dtype)[1]


def write_family(folder, kind, make_cases):
    os.makedirs(folder, exist_ok=True)
    manifest = {"rows": ROWS, "columns": COLUMNS, "inputs": {}, "cases": []}
    for dtype_index, dtype in enumerate(DTYPES):
        weights, bits = round_to_dtype(make_input(seed=1000 + dtype_index), dtype)
        input_name = f"input_{dtype.lower()}.bin"
        bits.astype("<u2").tofile(os.path.join(folder, input_name))
        manifest["inputs"][dtype] = input_name
        for case, parts in make_cases(weights, dtype):
            case["file"] = f"{dtype.lower()}_" + "_".join(f"{key[0]}{case[key]}" for key in sorted(case)) + ".bin"
            case["dtype"] = dtype
            with open(os.path.join(folder, case["file"]), "wb") as out:
                for part in parts:
                    out.write(part.tobytes())
            manifest["cases"].append(case)
    with open(os.path.join(folder, "manifest.json"), "w") as out:
        json.dump({"kind": kind, **manifest}, out, indent=1)
    total = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
    print(f"{os.path.relpath(folder, ROOT)}: {len(manifest['cases'])} cases, {total} bytes")


def numpy_affine_dequantize(packed, scales, biases, bits, group_size, dtype):
    """Independent unpacking: LSB-first bit stream over little-endian words, w = round(round(s*q) + b)."""
    stream = np.unpackbits(packed.astype("<u4").view(np.uint8).reshape(ROWS, -1), axis=1, bitorder="little")
    codes = (stream.reshape(ROWS, COLUMNS, bits) * (1 << np.arange(bits))).sum(-1).astype(np.float32)
    scale = np.repeat(scales, group_size, axis=1)
    bias = np.repeat(biases, group_size, axis=1)
    product = round_to_dtype(codes * scale, dtype)[0]
    return round_to_dtype(product + bias, dtype)[0]


def mlx_cases(weights, dtype):
    for bits in MLX_BITS:
        for group_size in GROUP_SIZES:
            packed, scales, biases, dequantized = reference_quantizers.mlx_affine(
                weights.reshape(-1), ROWS, COLUMNS, dtype, bits, group_size
            )
            check = numpy_affine_dequantize(packed, scales, biases, bits, group_size, dtype)
            if not np.array_equal(check, dequantized):
                raise SystemExit(f"numpy unpacking disagrees with mx.dequantize for {dtype} {bits} {group_size}")
            yield {"bits": bits, "group_size": group_size}, [
                packed.astype("<u4"),
                to_dtype_bits(scales, dtype).astype("<u2"),
                to_dtype_bits(biases, dtype).astype("<u2"),
                to_dtype_bits(dequantized, dtype).astype("<u2"),
            ]


def numpy_int4_dequantize(packed, scales, group_size, dtype):
    """Independent unpacking: nibble k of word j is column 8j + k; w = round((nibble - 8) * scale)."""
    words = packed.astype("<i4").view(np.uint32)
    nibbles = (words[:, :, None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
    codes = nibbles.reshape(ROWS, COLUMNS).astype(np.float32) - 8
    return round_to_dtype(codes * np.repeat(scales, group_size, axis=1), dtype)[0]


def int4_cases(weights, dtype):
    for group_size in GROUP_SIZES:
        packed, scales, dequantized = reference_quantizers.ct_int4(
            weights.reshape(-1), ROWS, COLUMNS, dtype, group_size
        )
        if not np.array_equal(numpy_int4_dequantize(packed, scales, group_size, dtype), dequantized):
            raise SystemExit(f"numpy unpacking disagrees with compressed-tensors for {dtype} {group_size}")
        yield {"group_size": group_size}, [
            packed.astype("<i4"),
            to_dtype_bits(scales, dtype).astype("<u2"),
            to_dtype_bits(dequantized, dtype).astype("<u2"),
        ]


def main():
    try:
        import mlx.core  # noqa: F401

        write_family(os.path.join(ROOT, "tests/fixtures/affine"), "mlx-affine", mlx_cases)
    except ImportError as error:
        print(f"skipping MLX fixtures: {error}")
    try:
        import compressed_tensors  # noqa: F401
        import torch  # noqa: F401

        write_family(os.path.join(ROOT, "tests/fixtures/int4_symmetric"), "ct-int4", int4_cases)
    except ImportError as error:
        print(f"skipping compressed-tensors fixtures: {error}")


if __name__ == "__main__":
    main()
