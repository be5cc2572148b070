#!/usr/bin/env python3
"""Writes a "reference" GGUF: the same metadata as IN.gguf (every key/value pair, tokenizer
included) and every tensor dequantized with gguf.quants.dequantize, stored as F32 (or, with
--type f16, 2-D weights as F16 and 1-D tensors as F32). The tensor order, names, shapes and layout
are those of IN (Q/K rows stay in llama.cpp's permuted order, which llama.cpp expects).

It measures nothing itself: it gives llama.cpp the same weights that `hlwq import --dtype f32`
gives hlwq, so the two engines can be compared without llama.cpp's activation quantization in
quantized dot products (an F32 matmul has none).

The one key changed is general.file_type, set to the truth (0 = all F32, 1 = mostly F16), so that
llama.cpp does not describe the file as the quantized type it came from.

--dither SEED makes a different model on purpose, for one experiment: every weight of a tensor
stored in Q4_0/Q4_1/Q5_0/Q5_1 gets uniform noise of plus or minus half its block's step (the
block's range over 15 or 31 levels), so that the weights no longer lie on that grid. A reference
taken from a low-bit GGUF favours quantizers whose blocks of 32 line up with the grid's (they can
land back on it); the dithered model, whose weights are spread like a continuous model's inside
each grid cell, asks the same question without that advantage. Its quality is a little worse
than the GGUF's, which does not matter: every row is compared with the dithered model itself.

usage: make_reference_gguf.py IN.gguf OUT.gguf [--type f32|f16] [--dither SEED]
Writes OUT.gguf.partial and renames it to OUT.gguf when complete.
"""
import argparse
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

# Keys the writer produces itself from the tensors and header.
WRITER_OWNED_KEYS = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture"}
FILE_TYPE_ALL_F32 = 0
FILE_TYPE_MOSTLY_F16 = 1


def copy_metadata(reader: GGUFReader, writer: GGUFWriter, file_type: int) -> None:
    for key, field in reader.fields.items():
        if key in WRITER_OWNED_KEYS:
            continue
        if key == "general.file_type":
            writer.add_key_value(key, file_type, GGUFValueType.UINT32)
            continue
        value_type = field.types[0]
        if value_type == GGUFValueType.ARRAY:
            # The element type is passed explicitly: inferring it from Python values would turn
            # e.g. an INT32 array into a different integer width.
            writer.add_key_value(key, field.contents(), value_type, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), value_type)


# Block formats with evenly spaced levels: levels per block of 32 weights.
DITHERED_TYPES = {GGMLQuantizationType.Q4_0: 16, GGMLQuantizationType.Q4_1: 16,
                  GGMLQuantizationType.Q5_0: 32, GGMLQuantizationType.Q5_1: 32}


def dither_blocks(values: np.ndarray, levels: int, rng: np.random.Generator) -> np.ndarray:
    """Adds U(-step/2, step/2) to each weight, step = (block max - block min) / (levels - 1) per
    block of 32 consecutive weights of a row (the format's block)."""
    blocks = values.reshape(-1, 32).astype(np.float64)
    step = (blocks.max(axis=1, keepdims=True) - blocks.min(axis=1, keepdims=True)) / (levels - 1)
    noise = rng.uniform(-0.5, 0.5, size=blocks.shape) * step
    return (blocks + noise).astype(np.float32).reshape(values.shape)


def dequantized_tensor(tensor, storage: str, rng=None) -> np.ndarray:
    # gguf shapes list the fastest-varying dimension first; numpy wants it last.
    shape = tuple(int(d) for d in reversed(tensor.shape))
    values = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32, copy=False)
    if rng is not None and tensor.tensor_type in DITHERED_TYPES:
        values = dither_blocks(values, DITHERED_TYPES[tensor.tensor_type], rng)
    if storage == "f16" and values.ndim >= 2:
        values = values.astype(np.float16)
    return np.ascontiguousarray(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--type", choices=["f32", "f16"], default="f32")
    parser.add_argument("--dither", type=int, metavar="SEED",
                        help="move Q4_0/Q4_1/Q5_0/Q5_1 weights off their grid (see above)")
    args = parser.parse_args()
    if os.path.exists(args.output):
        print(f"output file exists (remove it or choose another), {args.output}", file=sys.stderr)
        return 1

    reader = GGUFReader(args.input)
    architecture = reader.fields["general.architecture"].contents()
    partial = args.output + ".partial"
    writer = GGUFWriter(partial, architecture)
    writer.data_alignment = reader.alignment
    copy_metadata(reader, writer, FILE_TYPE_ALL_F32 if args.type == "f32" else FILE_TYPE_MOSTLY_F16)

    source_types = {}
    rng = np.random.default_rng(args.dither) if args.dither is not None else None
    for tensor in reader.tensors:
        source_types[tensor.tensor_type.name] = source_types.get(tensor.tensor_type.name, 0) + 1
        writer.add_tensor(tensor.name, dequantized_tensor(tensor, args.type, rng))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, args.output)
    except BaseException:
        writer.close()
        if os.path.exists(partial):
            os.remove(partial)
        raise

    written = GGUFReader(args.output)
    check_types = {t.tensor_type for t in written.tensors}
    allowed = {GGMLQuantizationType.F32, GGMLQuantizationType.F16}
    assert check_types <= allowed, f"unexpected tensor types {check_types}"
    assert [t.name for t in written.tensors] == [t.name for t in reader.tensors], "tensor order changed"
    print(f"{args.output}: {len(written.tensors)} tensors from {source_types} -> "
          f"{sorted(t.name for t in check_types)}, {len(written.fields)} fields, "
          f"{os.path.getsize(args.output) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
