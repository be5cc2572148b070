#!/usr/bin/env python3
"""Writes a dense model folder of a real architecture's shapes with random Gaussian weights
(std 0.02, norms near 1), for speed and memory measurements that need no download.

usage: make_synthetic_model.py OUT_DIR [--shape llama3-1b|llama3-8b|smollm2-135m] [--dtype bf16|f32]
Weights are written tensor by tensor (streaming), so memory stays near one tensor.
"""
import argparse
import json
import pathlib
import struct

import numpy as np

SHAPES = {
    "smollm2-135m": dict(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, vocab=49152, tied=True),
    "llama3-1b": dict(hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, vocab=128256, tied=True),
    "llama3-8b": dict(hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8, vocab=128256, tied=False),
}


def tensors(shape):
    h, f, heads, kv = shape["hidden"], shape["intermediate"], shape["heads"], shape["kv_heads"]
    head_dim = h // heads
    yield "model.embed_tokens.weight", (shape["vocab"], h)
    for i in range(shape["layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (h,)
        yield p + "self_attn.q_proj.weight", (heads * head_dim, h)
        yield p + "self_attn.k_proj.weight", (kv * head_dim, h)
        yield p + "self_attn.v_proj.weight", (kv * head_dim, h)
        yield p + "self_attn.o_proj.weight", (h, heads * head_dim)
        yield p + "post_attention_layernorm.weight", (h,)
        yield p + "mlp.gate_proj.weight", (f, h)
        yield p + "mlp.up_proj.weight", (f, h)
        yield p + "mlp.down_proj.weight", (h, f)
    yield "model.norm.weight", (h,)
    if not shape["tied"]:
        yield "lm_head.weight", (shape["vocab"], h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--shape", default="llama3-1b", choices=sorted(SHAPES))
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    args.out.mkdir(parents=True, exist_ok=False)
    element = 2 if args.dtype == "bf16" else 4
    header, offset = {}, 0
    listing = list(tensors(shape))
    for name, dims in listing:
        size = int(np.prod(dims)) * element
        header[name] = {"dtype": "BF16" if args.dtype == "bf16" else "F32", "shape": list(dims),
                        "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    rng = np.random.default_rng(args.seed)
    with open(args.out / "model.safetensors", "wb") as sink:
        sink.write(struct.pack("<Q", len(encoded)))
        sink.write(encoded)
        for name, dims in listing:
            values = rng.standard_normal(dims, dtype=np.float32) * np.float32(0.02)
            if len(dims) == 1:
                values += np.float32(1.0)
            if args.dtype == "bf16":
                bits = values.view(np.uint32)
                rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
                sink.write(rounded.tobytes())
            else:
                sink.write(values.tobytes())
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": shape["hidden"],
        "intermediate_size": shape["intermediate"], "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"], "num_key_value_heads": shape["kv_heads"],
        "vocab_size": shape["vocab"], "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "tie_word_embeddings": shape["tied"], "torch_dtype": "bfloat16" if args.dtype == "bf16" else "float32",
        "max_position_embeddings": 8192, "hidden_act": "silu",
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # A minimal byte-level tokenizer so the folder is complete (synthetic weights need no real one).
    vocab = {chr(0x100 + i) if i < 256 else f"<extra_{i}>": i for i in range(shape["vocab"])}
    tokenizer = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
                 "post_processor": None, "decoder": None,
                 "model": {"type": "BPE", "vocab": vocab, "merges": [], "byte_fallback": False}}
    (args.out / "tokenizer.json").write_text(json.dumps(tokenizer))
    print(f"wrote {args.out} ({args.shape}, {offset / 1e9:.2f} GB of {args.dtype})")


if __name__ == "__main__":
    main()
