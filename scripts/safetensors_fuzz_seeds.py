#!/usr/bin/env python3
"""Regenerates the tiny seed files in fuzz/corpus/safetensors/ for fuzz/safetensors_fuzz.cc.

Each seed is a valid safetensors file written by hand (no third-party writer), small enough
for libFuzzer's default input length; together they show the fuzzer every dtype, a scalar,
a zero-size tensor, metadata and the 8-byte space padding.
"""
import json
import os
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}


def safetensors_bytes(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape); data bytes are a counting pattern."""
    header, data, offset = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        count = 1
        for dimension in shape:
            count *= dimension
        size = count * SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        data += bytes((offset + i) % 251 for i in range(size))
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "fuzz", "corpus", "safetensors")
    os.makedirs(folder, exist_ok=True)
    seeds = {
        "empty": safetensors_bytes([]),
        "metadata_only": safetensors_bytes([], {"format": "pt"}, pad=False),
        "scalar_and_empty": safetensors_bytes([("s", "F32", []), ("e", "BF16", [3, 0])]),
        "two_tensors": safetensors_bytes([("w", "BF16", [2, 3]), ("b", "F32", [3])],
                                         {"format": "pt"}),
        "all_dtypes": safetensors_bytes([(d.lower(), d, [1]) for d in SIZES]),
    }
    for name, content in seeds.items():
        with open(os.path.join(folder, name + ".safetensors"), "wb") as out:
            out.write(content)


if __name__ == "__main__":
    main()
