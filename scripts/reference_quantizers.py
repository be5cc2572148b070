#!/usr/bin/env python3
"""Runs the real libraries' quantizers (mlx.core.quantize, compressed-tensors' pack-quantized
compressor) on raw arrays, for hlwq's cross-check tests and scripts/make_affine_fixtures.py.

Usage: reference_quantizers.py JOB.json
JOB.json: {"kind": "mlx-affine" | "ct-int4", "cases": [CASE, ...]} where every CASE has
  "input": path of rows*columns little-endian float32 weights (exactly representable in dtype),
  "rows", "columns", "dtype" ("BF16", "F16" or "F32"), "group_size", "output": path prefix,
  and for mlx-affine "bits"; for ct-int4 optionally "ours_packed" (int32) and "ours_scales"
  (float32) files to decompress with compressed-tensors.
Writes, all little-endian: PREFIX.packed (uint32 for MLX, int32 for INT4), PREFIX.scales,
PREFIX.biases (MLX only) and PREFIX.dequantized as float32 (values of dtype, widened), and for
ct-int4 with "ours_*" PREFIX.ours_dequantized (float32).
"""
import json
import sys

import numpy as np

FLOAT_DTYPES = ("BF16", "F16", "F32")


def read_f32(path, count):
    values = np.fromfile(path, dtype="<f4")
    if values.size != count:
        raise SystemExit(f"{path}: expected {count} float32 values, found {values.size}")
    return values


def mlx_affine(weights_f32, rows, columns, dtype, bits, group_size):
    """Returns (packed uint32, scales, biases, dequantized) as numpy arrays; floats widened to float32."""
    import mlx.core as mx

    mlx_dtype = {"BF16": mx.bfloat16, "F16": mx.float16, "F32": mx.float32}[dtype]
    weight = mx.array(weights_f32.reshape(rows, columns)).astype(mlx_dtype)
    packed, scales, biases = mx.quantize(weight, group_size=group_size, bits=bits, mode="affine")
    dequantized = mx.dequantize(packed, scales, biases, group_size=group_size, bits=bits, mode="affine")
    if scales.dtype != mlx_dtype or dequantized.dtype != mlx_dtype or packed.dtype != mx.uint32:
        raise SystemExit(f"unexpected MLX dtypes {packed.dtype} {scales.dtype} {dequantized.dtype}")

    def widen(array):
        return np.array(array.astype(mx.float32))

    return np.array(packed), widen(scales), widen(biases), widen(dequantized)


def _torch_dtype(dtype):
    import torch

    return {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[dtype]


def _w4a16_scheme(group_size):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    weights = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=group_size)
    return QuantizationScheme(targets=["Linear"], weights=weights)


def ct_int4(weights_f32, rows, columns, dtype, group_size):
    """compressed-tensors' own W4A16 path: min/max -> calculate_qparams -> compress -> decompress.
    Returns (packed int32, scales float32, dequantized float32)."""
    import torch
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization.utils import calculate_qparams

    scheme = _w4a16_scheme(group_size)
    weight = torch.from_numpy(weights_f32.reshape(rows, columns).copy()).to(_torch_dtype(dtype))
    groups = weight.reshape(rows, columns // group_size, group_size)
    scale, zero_point = calculate_qparams(groups.amin(-1), groups.amax(-1), scheme.weights)
    compressed = PackedQuantizationCompressor.compress(
        {"weight": weight, "weight_scale": scale, "weight_zero_point": zero_point}, scheme
    )
    if compressed["weight_shape"].dtype != torch.int64 or compressed["weight_shape"].tolist() != [rows, columns]:
        raise SystemExit(f"unexpected weight_shape {compressed['weight_shape']}")
    dequantized = PackedQuantizationCompressor.decompress(compressed, scheme)["weight"]
    return (
        compressed["weight_packed"].numpy(),
        compressed["weight_scale"].float().numpy(),
        dequantized.float().numpy(),
    )


def ct_int4_decompress(packed_i32, scales_f32, rows, columns, dtype, group_size):
    """compressed-tensors' decompress of someone else's weight_packed / weight_scale."""
    import torch
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor

    state = {
        "weight_packed": torch.from_numpy(packed_i32.reshape(rows, columns // 8).copy()),
        "weight_scale": torch.from_numpy(scales_f32.reshape(rows, columns // group_size).copy()).to(
            _torch_dtype(dtype)
        ),
        "weight_shape": torch.tensor([rows, columns]),
    }
    return PackedQuantizationCompressor.decompress(state, _w4a16_scheme(group_size))["weight"].float().numpy()


def run_case(kind, case):
    rows, columns, dtype = int(case["rows"]), int(case["columns"]), case["dtype"]
    group_size, prefix = int(case["group_size"]), case["output"]
    if dtype not in FLOAT_DTYPES:
        raise SystemExit(f"unknown dtype {dtype}")
    weights = read_f32(case["input"], rows * columns)
    if kind == "mlx-affine":
        packed, scales, biases, dequantized = mlx_affine(weights, rows, columns, dtype, int(case["bits"]), group_size)
        biases.astype("<f4").tofile(prefix + ".biases")
    elif kind == "ct-int4":
        packed, scales, dequantized = ct_int4(weights, rows, columns, dtype, group_size)
        if "ours_packed" in case:
            ours_packed = np.fromfile(case["ours_packed"], dtype="<i4")
            ours_scales = read_f32(case["ours_scales"], rows * columns // group_size)
            ct_int4_decompress(ours_packed, ours_scales, rows, columns, dtype, group_size).astype("<f4").tofile(
                prefix + ".ours_dequantized"
            )
    else:
        raise SystemExit(f"unknown kind {kind}")
    packed.tofile(prefix + ".packed")
    scales.astype("<f4").tofile(prefix + ".scales")
    dequantized.astype("<f4").tofile(prefix + ".dequantized")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as job_file:
        job = json.load(job_file)
    for case in job["cases"]:
        run_case(job["kind"], case)


if __name__ == "__main__":
    main()
