#!/usr/bin/env python3
"""Regenerates tests/fixtures/engine/: tiny random llama / qwen2 / qwen3 / gemma3 models (float32
safetensors, < 300 KB each) with transformers' logits for every position of a fixed prompt, and
transformers' top logits for the demo model (SmolLM2 GGUF imported by hlwq as F32).

Usage: scripts/make_engine_fixtures.py [--hlwq build/hlwq] [--demo models/SmolLM2-135M-Instruct.Q4_1.gguf]
Each folder gets ids.json {"ids": [...], "vocab": V} and logits.f32 (positions x vocab, little-endian).
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
import transformers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "engine")

COMMON = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=160, max_position_embeddings=128, rms_norm_eps=1e-5,
              torch_dtype="float32")

MODELS = {
    # Llama 3 style: llama3 rope scaling (original window 64: some frequencies scaled, some blended).
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
              dict(rope_theta=10000.0, tie_word_embeddings=False,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
    # SmolLM2 style: tied embeddings, linear rope scaling.
    "llama_tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                   dict(rope_theta=5000.0, tie_word_embeddings=True,
                        rope_scaling={"rope_type": "linear", "factor": 2.0})),
    # Qwen2: biases on q, k, v.
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
              dict(rope_theta=1000000.0, tie_word_embeddings=False)),
    # Qwen3: per-head RMSNorm on q and k, explicit head_dim (32, not hidden / heads = 16; the
    # head counts are halved to keep the fixture small).
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM,
              dict(rope_theta=1000000.0, tie_word_embeddings=False, head_dim=32)),
    # Gemma 3 text: 4 layers alternating sliding-window (local rope 1e4) and full attention (rope
    # 1e6 with linear scaling), query_pre_attn_scalar 24 (not head_dim 32), GeGLU, sandwich norms,
    # tied embeddings scaled by sqrt(64). The window (64) is the context the engine tests run at.
    "gemma3": (transformers.Gemma3TextConfig, transformers.Gemma3ForCausalLM,
               dict(num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                    query_pre_attn_scalar=24, sliding_window=64, tie_word_embeddings=True,
                    layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                    hidden_activation="gelu_pytorch_tanh")),
}

PROMPT_LENGTH = 12


def randomize(model, seed, norm_offset=1.0):
    # Random weights with norms and biases away from their trivial init, so every term matters.
    # Gemma's norms scale by (1 + weight): norm_offset 0 keeps their factors near 1 too.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() == 1 and "norm" in name:
                parameter.copy_(norm_offset + 0.2 * noise)
            elif parameter.dim() == 1:
                parameter.copy_(0.1 * noise)
            else:
                parameter.copy_(0.08 * noise)


def write_logits(folder, ids, logits):
    with open(os.path.join(folder, "ids.json"), "w") as f:
        json.dump({"ids": ids, "vocab": int(logits.shape[-1])}, f)
    logits.astype("<f4").tofile(os.path.join(folder, "logits.f32"))


def make_tiny(name, seed):
    config_class, model_class, extra = MODELS[name]
    settings = dict(COMMON, **extra)
    if name == "qwen3":
        settings.update(num_attention_heads=2, num_key_value_heads=1)
    config = config_class(**settings)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    randomize(model, seed, norm_offset=0.0 if name == "gemma3" else 1.0)
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra_file in ("generation_config.json",):
        path = os.path.join(folder, extra_file)
        if os.path.exists(path):
            os.remove(path)
    rng = np.random.default_rng(seed)
    ids = [int(i) for i in rng.integers(0, COMMON["vocab_size"], PROMPT_LENGTH)]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().numpy()
    assert getattr(config, "final_logit_softcapping", None) is None
    write_logits(folder, ids, logits)
    print(name, "max |logit|", float(np.abs(logits).max()))


def make_demo(hlwq, gguf, top):
    with tempfile.TemporaryDirectory() as temp:
        folder = os.path.join(temp, "demo")
        subprocess.run([hlwq, "import", gguf, "-o", folder, "--dtype", "f32"], check=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        rng = np.random.default_rng(7)
        ids = [1] + [int(i) for i in rng.integers(100, 20000, 15)]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
    # Per position: the `top` largest logits and their token ids (the full table is 3 MB).
    indices = np.argsort(-logits, axis=1)[:, :top]
    values = np.take_along_axis(logits, indices, axis=1)
    record = {"ids": ids, "vocab": int(logits.shape[1]), "top_indices": indices.tolist(),
              "top_values": [[round(float(v), 6) for v in row] for row in values]}
    with open(os.path.join(OUT, "smollm2_demo_top_logits.json"), "w") as f:
        json.dump(record, f)
    print("demo: top-1 per position", indices[:, 0].tolist())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hlwq", default=os.path.join(ROOT, "build", "hlwq"))
    parser.add_argument("--demo", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--top", type=int, default=48)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--only", help="regenerate only this tiny model (e.g. gemma3)")
    args = parser.parse_args()
    for seed, name in enumerate(MODELS, start=11):
        if args.only is None or args.only == name:
            make_tiny(name, seed)
    if not args.skip_demo and args.only is None:
        make_demo(args.hlwq, args.demo, args.top)


if __name__ == "__main__":
    main()
