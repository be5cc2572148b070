#!/usr/bin/env python3
"""Regenerates tests/fixtures/gguf/: a small GGUF holding one tensor of every type hlwq
dequantizes (random block bytes with finite f16 scales) and metadata of every value type, plus
the float32 values gguf-py's reference dequantization gives for each tensor.

    scripts/make_gguf_fixtures.py            # writes tests/fixtures/gguf/
    scripts/make_gguf_fixtures.py --demo F   # prints the demo-model numbers tests/io/gguf_test.cc hard-codes

Needs numpy and gguf (gguf-py, tested with 0.19). Output is deterministic (fixed seed).
"""
import argparse
import pathlib
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf"

# Byte offsets of the f16 scale fields inside one block of each type.
SCALE_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}

# name -> (type, shape in PyTorch order). 2-D, 3-D and 4-D shapes; a few blocks per type.
TENSORS = {
    "f32.weight": (T.F32, (3, 5)),
    "f16.weight": (T.F16, (4, 7)),
    "bf16.weight": (T.BF16, (2, 3, 8)),
    "q4_0.weight": (T.Q4_0, (3, 64)),
    "q4_1.weight": (T.Q4_1, (2, 2, 32)),
    "q5_0.weight": (T.Q5_0, (4, 32)),
    "q5_1.weight": (T.Q5_1, (2, 96)),
    "q8_0.weight": (T.Q8_0, (3, 2, 32)),
    "q4_k.weight": (T.Q4_K, (2, 256)),
    "q5_k.weight": (T.Q5_K, (2, 1, 256)),
    "q6_k.weight": (T.Q6_K, (3, 256)),
    "f64.weight": (T.F64, (5,)),
    "i8.weight": (T.I8, (16,)),
    "i16.weight": (T.I16, (2, 8)),
    "i32.weight": (T.I32, (10,)),
    "four_d.weight": (T.F16, (1, 2, 3, 4)),
}


def random_scales(rng, count):
    """Finite f16 scales: mostly normal magnitudes of both signs, some subnormal, one zero."""
    scales = (rng.normal(0.0, 0.05, count)).astype(np.float16)
    scales[rng.random(count) < 0.15] = np.float16(3.0e-6) * np.float16(rng.choice([-1, 1]))
    scales[0] = np.float16(0.0) if count > 3 else scales[0]
    return scales


def quantized_bytes(rng, qtype, shape):
    block_elements, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(shape[:-1]))
    blocks = rows * shape[-1] // block_elements
    data = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    for field in SCALE_FIELDS[qtype]:
        data[:, field:field + 2] = random_scales(rng, blocks).view(np.uint8).reshape(blocks, 2)
    return data.reshape(*shape[:-1], shape[-1] // block_elements * block_bytes)


def make_tensor(rng, qtype, shape):
    """Returns (array for GGUFWriter, raw_dtype or None, expected float32 values)."""
    if qtype in SCALE_FIELDS:
        raw = quantized_bytes(rng, qtype, shape)
        return raw, qtype, gguf.quants.dequantize(raw, qtype)
    if qtype == T.F32:
        values = rng.normal(0.0, 1.0, shape).astype(np.float32)
        return values, None, values
    if qtype == T.F16:
        values = rng.normal(0.0, 2.0, shape).astype(np.float16)
        flat = values.reshape(-1)
        flat[:5] = [np.inf, -np.inf, -0.0, 6.0e-8, -3.0e-5]  # infinities, -0, subnormals
        return values, None, gguf.quants.dequantize(values.view(np.uint8), T.F16)
    if qtype == T.BF16:
        floats = rng.normal(0.0, 3.0, shape).astype(np.float32)
        floats.reshape(-1)[:3] = [-0.0, 1.0e-39, -np.inf]
        raw = gguf.quants.quantize(floats, T.BF16)
        return raw, T.BF16, gguf.quants.dequantize(raw, T.BF16)
    if qtype == T.F64:
        values = rng.normal(0.0, 1.0, shape) * np.array([1.0, 1e-40, 1e30, 3.0, 1.0 / 3.0])
        return values, None, values.astype(np.float32)
    integer = {T.I8: np.int8, T.I16: np.int16, T.I32: np.int32}[qtype]
    info = np.iinfo(integer)
    values = rng.integers(info.min, info.max, size=shape, dtype=integer, endpoint=True)
    return values, None, values.astype(np.float32)


def add_metadata(writer):
    add = writer.add_key_value
    add("test.u8", 200, V.UINT8)
    add("test.i8", -100, V.INT8)
    add("test.u16", 60000, V.UINT16)
    add("test.i16", -30000, V.INT16)
    add("test.u32", 4000000000, V.UINT32)
    add("test.i32", -2000000000, V.INT32)
    add("test.u64", 2**64 - 1, V.UINT64)
    add("test.i64", -2**63, V.INT64)
    add("test.f32", 0.1, V.FLOAT32)
    add("test.f64", 1.0 / 3.0, V.FLOAT64)
    add("test.bool_true", True, V.BOOL)
    add("test.bool_false", False, V.BOOL)
    add("test.string", "h\u00e9llo \u2713 \U0001F642", V.STRING)
    add("test.string_empty", "", V.STRING)
    add("test.string_raw", b"\xff\xfeab\xc3", V.STRING)  # not UTF-8: must survive byte for byte
    add("test.array_u8", [1, 2, 255], V.ARRAY, V.UINT8)
    add("test.array_i8", [-128, 0, 127], V.ARRAY, V.INT8)
    add("test.array_u16", [0, 65535], V.ARRAY, V.UINT16)
    add("test.array_i16", [-32768, 32767], V.ARRAY, V.INT16)
    add("test.array_u32", [7, 4294967295], V.ARRAY, V.UINT32)
    add("test.array_i32", [-5, 2147483647], V.ARRAY, V.INT32)
    add("test.array_u64", [2**64 - 1, 0], V.ARRAY, V.UINT64)
    add("test.array_i64", [-2**63, 2**63 - 1], V.ARRAY, V.INT64)
    add("test.array_f32", [1.5, -0.25], V.ARRAY, V.FLOAT32)
    add("test.array_f64", [2.5, -1e300], V.ARRAY, V.FLOAT64)
    add("test.array_bool", [True, False, True], V.ARRAY, V.BOOL)
    add("test.array_string", ["a", "", "\u00fc", b"\x80\x00z"], V.ARRAY, V.STRING)
    add("test.array_nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY, V.ARRAY)
    add("test.array_nested_string", [["x"], ["y", "z"]], V.ARRAY, V.ARRAY)
    add("test.array_nested_deep", [[[1]], [[2, 3]]], V.ARRAY, V.ARRAY)


def write_fixtures():
    rng = np.random.default_rng(20240607)
    OUT.mkdir(parents=True, exist_ok=True)
    expected_dir = OUT / "expected"
    expected_dir.mkdir(exist_ok=True)
    path = OUT / "all_types.gguf"
    writer = gguf.GGUFWriter(str(path), arch="hlwq-test")
    writer.add_custom_alignment(64)
    add_metadata(writer)
    for name, (qtype, shape) in TENSORS.items():
        array, raw_dtype, expected = make_tensor(rng, qtype, shape)
        writer.add_tensor(name, array, raw_dtype=raw_dtype)
        expected = np.ascontiguousarray(expected, dtype="<f4").reshape(shape)
        expected.tofile(expected_dir / f"{name}.f32")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # Read back with gguf-py's own reader: same types and shapes as intended.
    reader = gguf.GGUFReader(str(path))
    for tensor in reader.tensors:
        qtype, shape = TENSORS[tensor.name]
        assert tensor.tensor_type == qtype and tuple(int(d) for d in reversed(tensor.shape)) == shape
    print(f"wrote {path} ({path.stat().st_size} bytes) and {len(TENSORS)} expected files")


def print_demo_numbers(path):
    """Numbers for tests/io/gguf_test.cc: float64 sum and sum of squares, and a few values."""
    reader = gguf.GGUFReader(path)
    print(f"tensors {len(reader.tensors)} data_offset {reader.data_offset}")
    names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
             "blk.0.attn_norm.weight", "output_norm.weight"]
    for tensor in reader.tensors:
        if tensor.name not in names:
            continue
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1)
        as64 = values.astype(np.float64)
        indices = (0, 1, 31, 32, values.size // 2, values.size - 1)
        samples = ", ".join(f"{{{i}, {float(values[i]).hex()}f}}" for i in indices)
        print(f'{{"{tensor.name}", GgufTensorType::{tensor.tensor_type.name}, {values.size}, '
              f'{float(as64.sum())!r}, {float((as64 * as64).sum())!r}, {{{samples}}}}},')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", help="print reference numbers for this demo GGUF instead")
    arguments = parser.parse_args()
    if arguments.demo:
        print_demo_numbers(arguments.demo)
    else:
        write_fixtures()


if __name__ == "__main__":
    sys.exit(main())
