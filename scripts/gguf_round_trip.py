#!/usr/bin/env python3
"""A dense model folder whose linear weights went through one of llama.cpp's block formats and back.

Quantizes every 2-D `*_proj.weight` of the decoder layers (the tensors `hlwq quantize` codes by
default: not the embeddings, norms or lm_head) with gguf-py's numpy port of llama.cpp's reference
quantizer (`gguf.quants.quantize`, no importance matrix; blocks along each row's input, as in a
GGUF), dequantizes it, and writes the folder again in F32 with those weights, so hlwq's engine runs
llama.cpp's weights with everything else equal (`hlwq ppl --kld-base` compares it like any other
format). Prints the stored bits per weight of those tensors.

  scripts/gguf_round_trip.py DENSE_DIR OUT_DIR --type Q4_0|Q4_1|Q5_0|Q5_1|Q8_0
"""
import argparse
import json
import os
import re
import shutil
import sys

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants
from safetensors.numpy import load_file, save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dense")
    parser.add_argument("out")
    parser.add_argument("--type", required=True, choices=["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
    args = parser.parse_args()
    if os.path.exists(args.out):
        sys.exit(f"gguf_round_trip: {args.out} exists; give a new folder")
    kind = GGMLQuantizationType[args.type]
    block, block_bytes = GGML_QUANT_SIZES[kind]
    staging = args.out + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(args.dense, staging, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    weights = stored_bits = 0
    files = sorted(f for f in os.listdir(args.dense) if f.endswith(".safetensors"))
    for name in files:
        tensors = load_file(os.path.join(args.dense, name))
        for key, value in tensors.items():
            if value.ndim != 2 or not re.search(r"layers\.\d+\..*_proj\.weight$", key):
                continue
            if value.shape[1] % block:
                sys.exit(f"gguf_round_trip: {key} has rows of {value.shape[1]}, not a multiple of {args.type}'s {block}")
            original = value.astype(np.float32)
            packed = quants.quantize(original, kind)
            tensors[key] = quants.dequantize(packed, kind).reshape(original.shape).astype(value.dtype)
            weights += original.size
            stored_bits += original.size // block * block_bytes * 8
        save_file(tensors, os.path.join(staging, name), metadata={"format": "pt"})
    if os.path.exists(os.path.join(args.dense, "model.safetensors.index.json")):
        shutil.copy(os.path.join(args.dense, "model.safetensors.index.json"), staging)
    os.rename(staging, args.out)
    print(json.dumps({"type": args.type, "weights": weights, "bits_per_weight": stored_bits / max(weights, 1)}))


if __name__ == "__main__":
    main()
