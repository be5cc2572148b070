#!/usr/bin/env python3
"""A dense model folder whose weights went through llama.cpp's own quantizer and back.

Quantizes an F32 GGUF of the model (make_reference_gguf.py writes one from any GGUF) with libllama
itself (llama-cpp-python's llama_model_quantize, default parameters: no importance matrix,
llama.cpp's own per-tensor type choices and fallbacks, the embedding included), reads every tensor
back with gguf-py (`gguf.quants.dequantize`), and writes DENSE_DIR again in F32 with every tensor
llama.cpp quantized replaced by its read-back (the layers' linear weights and the token embedding,
which a tied lm_head shares). hlwq's engine then runs llama.cpp's weights with everything else equal
(`hlwq ppl --kld-base` compares it like any other format), as gguf_round_trip.py does for gguf-py's
reference quantizer.

Each replaced tensor is matched to DENSE_DIR's tensor through the F32 GGUF: equal, or the same rows
in another order (llama.cpp's Q/K rows are permuted; every type quantizes row by row, so the rows
are put back in DENSE_DIR's order); anything else fails. Prints one JSON object: the bits per
linear weight (stored bytes of the layers' linear weights, whatever type each got), the bits over
all tensors of the GGUF (the embedding and norms included), and the types each group got.

  scripts/llama_cpp_round_trip.py DENSE_DIR REF.F32.gguf OUT_DIR --type Q4_K_M \\
      --llama-cpp-python SDIST --llama-cpp-lib LIBDIR [--threads 2] [--keep-gguf]

SDIST is llama-cpp-python's unpacked source distribution (its Python bindings) and LIBDIR the
folder of the libllama.so built from its vendor/llama.cpp (scripts/sqnr_frontier.py's help shows
the build). scripts/test_llama_cpp_round_trip.py checks the name mapping and the row matching
without llama.cpp.
"""
import argparse
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

LINEAR = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
          "ffn_down": "mlp.down_proj"}
OTHER = {"token_embd.weight": "model.embed_tokens.weight", "output.weight": "lm_head.weight",
         "output_norm.weight": "model.norm.weight"}
NORMS = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def dense_name(gguf_name):
    """llama.cpp's tensor name -> the Hugging Face name (Llama-style models); None if unknown."""
    if gguf_name in OTHER:
        return OTHER[gguf_name]
    match = re.match(r"^blk\.(\d+)\.([a-z_]+)\.weight$", gguf_name)
    if match and match[2] in LINEAR:
        return f"model.layers.{match[1]}.{LINEAR[match[2]]}.weight"
    if match and match[2] in NORMS:
        return f"model.layers.{match[1]}.{NORMS[match[2]]}.weight"
    return None


def is_linear(gguf_name):
    match = re.match(r"^blk\.\d+\.([a-z_]+)\.weight$", gguf_name)
    return bool(match and match[1] in LINEAR)


def row_order(stored, dense, name):
    """order such that stored[i] == dense[order[i]], or None when equal; fails otherwise."""
    if stored.shape != dense.shape:
        sys.exit(f"llama_cpp_round_trip: {name} is {stored.shape} in the GGUF, {dense.shape} in the folder")
    if np.array_equal(stored, dense):
        return None
    where = {}
    for index, row in enumerate(dense):
        where.setdefault(row.tobytes(), []).append(index)
    order = []
    for row in stored:
        candidates = where.get(row.tobytes())
        if not candidates:
            sys.exit(f"llama_cpp_round_trip: {name}'s rows in the F32 GGUF are not the folder's rows")
        order.append(candidates.pop())
    return np.asarray(order)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dense")
    parser.add_argument("reference_gguf")
    parser.add_argument("out")
    parser.add_argument("--type", required=True, help="llama.cpp's file type: Q4_0, Q4_K_M, IQ4_XS, Q8_0, ...")
    parser.add_argument("--llama-cpp-python", required=True, help="llama-cpp-python's unpacked sdist")
    parser.add_argument("--llama-cpp-lib", required=True, help="the folder of libllama.so")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-gguf", action="store_true", help="keep the quantized GGUF and llama.cpp's log in OUT_DIR")
    args = parser.parse_args()
    if os.path.exists(args.out):
        sys.exit(f"llama_cpp_round_trip: {args.out} exists; give a new folder")
    os.environ["LLAMA_CPP_LIB_PATH"] = str(Path(args.llama_cpp_lib).resolve())
    sys.path.insert(0, str(Path(args.llama_cpp_python).resolve()))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import llama_cpp
    import llama_cpp_quantize
    from gguf import GGMLQuantizationType, GGUFReader, quants

    llama_cpp.llama_backend_init()
    staging = args.out + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(args.dense, staging, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    quantized = os.path.join(staging, f"model.{args.type}.gguf")
    log_path = os.path.join(staging, f"model.{args.type}.log")
    start = time.perf_counter()
    status = llama_cpp_quantize.quantize(args.reference_gguf, quantized, llama_cpp_quantize.ftype_of(args.type),
                                         args.threads, log_path)
    quantize_seconds = time.perf_counter() - start
    if status != 0 or not os.path.exists(quantized):
        lines = [line.strip() for line in open(log_path, errors="replace") if line.strip()]
        sys.exit(f"llama_cpp_round_trip: llama_model_quantize {args.type} failed ({status}): "
                 f"{lines[-1] if lines else 'no log'}")

    reference = {t.name: t for t in GGUFReader(args.reference_gguf).tensors}
    tensors = list(GGUFReader(quantized).tensors)
    restored = {}  # dense name -> (GGUF name, F32 array in the folder's row order)
    groups = {"linear": Counter(), "embedding": Counter(), "other": Counter()}
    bits = {"linear": [0, 0], "all": [0, 0]}  # stored bits, weights
    for tensor in tensors:
        weights, stored_bits = int(tensor.n_elements), 8 * int(tensor.n_bytes)
        bits["all"][0] += stored_bits
        bits["all"][1] += weights
        group = "linear" if is_linear(tensor.name) else "embedding" if tensor.name == "token_embd.weight" else "other"
        groups[group][tensor.tensor_type.name] += 1
        if group == "linear":
            bits["linear"][0] += stored_bits
            bits["linear"][1] += weights
        if tensor.tensor_type in (GGMLQuantizationType.F32,):
            continue
        name = dense_name(tensor.name)
        if name is None:
            sys.exit(f"llama_cpp_round_trip: no folder name known for {tensor.name} ({tensor.tensor_type.name})")
        values = quants.dequantize(np.asarray(tensor.data), tensor.tensor_type).astype(np.float32)
        restored[name] = (tensor.name, values)

    files = sorted(f for f in os.listdir(args.dense) if f.endswith(".safetensors"))
    layouts = Counter()
    for file in files:
        folder = load_file(os.path.join(args.dense, file))
        for name in list(folder):
            if name not in restored:
                continue
            gguf_name, values = restored.pop(name)
            original = np.asarray(reference[gguf_name].data)
            order = row_order(original, folder[name].astype(np.float32), name)
            if values.shape != original.shape:
                sys.exit(f"llama_cpp_round_trip: {gguf_name} reads back as {values.shape}, not {original.shape}")
            if order is None:
                layouts["identical"] += 1
            else:
                layouts["rows permuted"] += 1
                unpermuted = np.empty_like(values)
                unpermuted[order] = values
                values = unpermuted
            folder[name] = values.astype(folder[name].dtype)
        save_file(folder, os.path.join(staging, file), metadata={"format": "pt"})
    if restored:
        sys.exit(f"llama_cpp_round_trip: not in {args.dense}: {sorted(restored)}")
    if os.path.exists(os.path.join(args.dense, "model.safetensors.index.json")):
        shutil.copy(os.path.join(args.dense, "model.safetensors.index.json"), staging)
    fallbacks = Counter()
    for line in open(log_path, errors="replace"):
        match = re.search(r"(blk\.\d+\.\S+|token_embd\.weight|output\.weight)\s.*required for type\s+(\S+)\).*"
                          r"falling back to\s+(\S+)", line)
        if match:
            fallbacks[f"{match[2].upper()} -> {match[3].upper()}"] += 1
    if not args.keep_gguf:
        os.remove(quantized)
        os.remove(log_path)
    os.rename(staging, args.out)
    print(json.dumps({
        "type": args.type, "quantizer": f"llama-cpp-python {llama_cpp.__version__} (libllama), no imatrix",
        "bits_per_linear_weight": bits["linear"][0] / bits["linear"][1], "linear_weights": bits["linear"][1],
        "bits_per_weight_all_tensors": bits["all"][0] / bits["all"][1], "weights": bits["all"][1],
        "types": {group: dict(counter.most_common()) for group, counter in groups.items()},
        "fallbacks": dict(fallbacks), "layouts": dict(layouts), "quantize_seconds": round(quantize_seconds, 1)}))


if __name__ == "__main__":
    main()
