#!/usr/bin/env python3
"""Regenerates tests/fixtures/qwen35/: tiny random Qwen3.5 models (dense, hybrid gated delta-net + gated
full attention) with transformers' logits, and op-level references for the delta-net layer math.

Usage: python3 scripts/make_qwen35_fixtures.py            (about 20 s on a CPU; deterministic)

Needs transformers >= 5 (models/qwen3_5) and torch. Only PyPI is reachable from the project's machines:
`pip install torch` takes the default (CUDA) wheel and its nvidia-* packages (about 4 GB of downloads);
everything here runs on the CPU, the CUDA libraries are only loaded, never used.

Written (all float32 unless said):
  text/        Qwen3_5ForCausalLM (model_type qwen3_5_text), untied lm_head, float32 safetensors
  text_tied/   the same with tie_word_embeddings (no lm_head tensor)
  multimodal/  Qwen3_5ForConditionalGeneration (model_type qwen3_5): text_config + a 1-block vision tower,
               saved in bfloat16 in 3 shards (model.language_model.*, model.visual.*, lm_head.*) like the
               published checkpoints, plus two mtp.* tensors the published checkpoints carry and
               transformers ignores
  Each model folder has a minimal tokenizer.json (an empty BPE: hlwq's convert commands want one),
  ids.json ({"ids": [...], "vocab": V}) and logits.f32 (ids x vocab float32: the text logits at every
  position of transformers' float32 model loaded from the folder; multimodal: from its bfloat16 weights).
  ops.safetensors: inputs and transformers/torch outputs of the layer math (see make_ops below).

Every model: 4 layers, layer_types linear, linear, linear, full (the published 3:1 pattern), hidden 64,
4 query heads / 2 KV heads of head_dim 32 with partial_rotary_factor 0.25 (8 rotated dims), linear
attention with 2 key heads / 4 value heads (the published 1:2 ratio) of dims 16 / 24, conv kernel 4,
vocab 160. Weights are random (seed 0), with zero-centered norm weights, A_log, dt_bias and the
gated-norm weight moved away from their trivial init so every term matters.
"""
import json
import os
import shutil

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.models.qwen3_5 import modeling_qwen3_5 as qwen35

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "qwen35")
PROMPT_LENGTH = 40

TEXT = dict(
    vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
    num_key_value_heads=2, head_dim=32, hidden_act="silu", max_position_embeddings=256, rms_norm_eps=1e-6,
    layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=24, linear_num_key_heads=2,
    linear_num_value_heads=4,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25,
                     "mrope_section": [1, 1, 2], "mrope_interleaved": True},
)

VISION = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=4,
              spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=16)


def randomize(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("A_log"):
                # exp(A_log) in [0.5, 4]: decays from mild to strong.
                parameter.copy_(torch.empty(parameter.shape).uniform_(np.log(0.5), np.log(4.0), generator=generator))
            elif name.endswith("dt_bias"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
            elif name.endswith("linear_attn.norm.weight"):
                # Scales by the weight itself (not 1 + weight).
                parameter.copy_(1.0 + torch.randn(parameter.shape, generator=generator) * 0.2)
            elif parameter.ndim == 1:
                # Zero-centered RMSNorm weights (1 + weight) and any bias.
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
            else:
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / np.sqrt(fan_in))


def prompt(vocab):
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, vocab, (1, PROMPT_LENGTH), generator=generator)


# hlwq's convert commands carry a tokenizer over and refuse a folder without one; the fixtures are
# driven by token ids, so an empty BPE model is enough.
MINIMAL_TOKENIZER = '{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}\n'


def write_logits(folder, ids, logits, vocab):
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        f.write(MINIMAL_TOKENIZER)
    with open(os.path.join(folder, "ids.json"), "w") as f:
        json.dump({"ids": ids[0].tolist(), "vocab": vocab}, f)
    logits[0].to(torch.float32).numpy().astype("<f4").tofile(os.path.join(folder, "logits.f32"))


def saved_model_logits(model_class, folder, ids):
    # From the folder as saved, loaded in float32: casting the in-memory model to bfloat16 and back
    # would also round its rotary inverse frequencies (a buffer), which loading recomputes.
    model = model_class.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def fresh(name):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def make_text(name, tied, seed):
    folder = fresh(name)
    config = transformers.Qwen3_5TextConfig(**TEXT, tie_word_embeddings=tied)
    torch.manual_seed(seed)
    model = transformers.Qwen3_5ForCausalLM(config).eval()
    randomize(model, seed)
    if tied:
        model.tie_weights()
    model.save_pretrained(folder, safe_serialization=True)
    ids = prompt(config.vocab_size)
    write_logits(folder, ids, saved_model_logits(transformers.Qwen3_5ForCausalLM, folder, ids), config.vocab_size)


def make_multimodal(seed):
    folder = fresh("multimodal")
    config = transformers.Qwen3_5Config(text_config=dict(TEXT, tie_word_embeddings=False), vision_config=VISION,
                                        tie_word_embeddings=False, image_token_id=150, video_token_id=151,
                                        vision_start_token_id=152, vision_end_token_id=153)
    torch.manual_seed(seed)
    model = transformers.Qwen3_5ForConditionalGeneration(config).eval()
    randomize(model, seed)
    model = model.to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    # The published checkpoints also hold a multi-token-prediction head (mtp.*) that transformers
    # ignores on load: two of its tensors, so that convert/ is tested on them.
    add_mtp_tensors(folder, config.text_config.hidden_size, seed)
    # Logits in float32 from the bfloat16 weights (what an engine reading the folder computes).
    ids = prompt(config.text_config.vocab_size)
    logits = saved_model_logits(transformers.Qwen3_5ForConditionalGeneration, folder, ids)
    write_logits(folder, ids, logits, config.text_config.vocab_size)


def add_mtp_tensors(folder, hidden, seed):
    generator = torch.Generator().manual_seed(seed + 7)
    tensors = {"mtp.fc.weight": (torch.randn(hidden, 2 * hidden, generator=generator) * 0.1).to(torch.bfloat16),
               "mtp.norm.weight": (torch.randn(hidden, generator=generator) * 0.1).to(torch.bfloat16)}
    index_path = os.path.join(folder, "model.safetensors.index.json")
    with open(index_path) as f:
        index = json.load(f)
    shard = "model-mtp.safetensors"
    save_file(tensors, os.path.join(folder, shard), metadata={"format": "pt"})
    for name in tensors:
        index["weight_map"][name] = shard
    index["weight_map"] = dict(sorted(index["weight_map"].items()))
    with open(index_path, "w") as f:
        json.dump(index, f, indent=2)


def make_ops(seed):
    """The layer math on fresh random inputs, as transformers' Qwen3.5 code computes it (float32):
    conv.*   causal_conv1d_update (the cached path: state prepended) with SiLU, state (1, C, K-1)
    delta.*  raw q/k (l2-normalized inside, use_qk_l2norm_in_kernel) and v, a/b/A_log/dt_bias, the
             resulting g and beta, a non-zero initial state; outputs and final states of
             torch_recurrent_gated_delta_rule and torch_chunk_gated_delta_rule (chunk 64, 150 tokens:
             two whole chunks and a partial one)
    l2.*     l2norm of delta.query with eps 1e-6
    gnorm.*  Qwen3_5RMSNormGated
    rope.*   Qwen3_5TextRotaryEmbedding + apply_rotary_pos_emb for positions 0..T-1 (partial, 0.25)
    gate.*   Qwen3_5Attention's split of q_proj output into query and gate, and output * sigmoid(gate)
    Layouts are stored as the C++ ops take them (documented per tensor below).
    """
    g = torch.Generator().manual_seed(seed)
    tensors = {}

    # Causal conv1d: tokens x channels input, channels x kernel weight, (kernel-1) x channels state.
    tokens, channels, kernel = 9, 40, 4
    x = torch.randn(1, channels, tokens, generator=g)
    weight = torch.randn(channels, kernel, generator=g) * 0.5
    state = torch.randn(1, channels, kernel - 1, generator=g)
    state_out = state.clone()
    out = qwen35.causal_conv1d_update.__wrapped__(x, state_out, weight, None, "silu") \
        if hasattr(qwen35.causal_conv1d_update, "__wrapped__") else \
        qwen35.causal_conv1d_update(x, state_out, weight, None, "silu")
    tensors.update({"conv.input": x[0].T, "conv.weight": weight, "conv.state_in": state[0].T,
                    "conv.output": out[0].T, "conv.state_out": state_out[0].T})

    # Gated delta rule: (tokens, heads, dim) inputs, state (value_heads, key_dim, value_dim).
    tokens, key_heads, value_heads, key_dim, value_dim = 150, 2, 4, 16, 24
    query = torch.randn(1, tokens, key_heads, key_dim, generator=g)
    key = torch.randn(1, tokens, key_heads, key_dim, generator=g)
    value = torch.randn(1, tokens, value_heads, value_dim, generator=g)
    a = torch.randn(1, tokens, value_heads, generator=g)
    b = torch.randn(1, tokens, value_heads, generator=g)
    a_log = torch.empty(value_heads).uniform_(np.log(0.05), np.log(2.0), generator=g)
    dt_bias = torch.randn(value_heads, generator=g) * 0.5
    beta = b.sigmoid()
    decay = -a_log.float().exp() * torch.nn.functional.softplus(a.float() + dt_bias)
    initial = torch.randn(1, value_heads, key_dim, value_dim, generator=g) * 0.3
    recurrent_out, recurrent_state = qwen35.torch_recurrent_gated_delta_rule(
        query, key, value, g=decay, beta=beta, initial_state=initial.clone(), output_final_state=True,
        use_qk_l2norm_in_kernel=True)
    chunked_out, chunked_state = qwen35.torch_chunk_gated_delta_rule(
        query, key, value, g=decay, beta=beta, chunk_size=64, initial_state=initial.clone(),
        output_final_state=True, use_qk_l2norm_in_kernel=True)
    tensors.update({
        "delta.query": query[0], "delta.key": key[0], "delta.value": value[0], "delta.a": a[0], "delta.b": b[0],
        "delta.A_log": a_log, "delta.dt_bias": dt_bias, "delta.decay": decay[0], "delta.beta": beta[0],
        "delta.state_in": initial[0], "delta.recurrent_output": recurrent_out[0],
        "delta.recurrent_state": recurrent_state[0], "delta.chunked_output": chunked_out[0],
        "delta.chunked_state": chunked_state[0],
    })
    tensors["l2.query_normalized"] = qwen35.l2norm(query[0], dim=-1, eps=1e-6)

    # Gated RMSNorm over rows of value_dim.
    rows = 12
    norm = qwen35.Qwen3_5RMSNormGated(value_dim, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(1.0 + torch.randn(value_dim, generator=g) * 0.3)
    gx = torch.randn(rows, value_dim, generator=g) * 2.0
    gz = torch.randn(rows, value_dim, generator=g) * 2.0
    with torch.no_grad():
        tensors.update({"gnorm.x": gx, "gnorm.z": gz, "gnorm.weight": norm.weight.detach().clone(),
                        "gnorm.output": norm(gx, gz)})

    # Partial rotary embedding: q (tokens, heads, head_dim) rotated at positions 0..tokens-1.
    tokens, heads, head_dim = 20, 3, 32
    config = transformers.Qwen3_5TextConfig(**dict(TEXT, head_dim=head_dim))
    rotary = qwen35.Qwen3_5TextRotaryEmbedding(config)
    q = torch.randn(1, heads, tokens, head_dim, generator=g)
    positions = torch.arange(tokens)[None, :]
    cos, sin = rotary(q, positions)
    rotated, _ = qwen35.apply_rotary_pos_emb(q, q.clone(), cos, sin)
    tensors.update({"rope.input": q[0].transpose(0, 1), "rope.output": rotated[0].transpose(0, 1),
                    "rope.theta": torch.tensor([10000.0]), "rope.rotary_dim": torch.tensor([float(cos.shape[-1])])})

    # Attention output gate: q_proj output (tokens, heads * 2 * head_dim) -> query, gate; attention
    # output * sigmoid(gate).
    tokens, heads, head_dim = 5, 4, 8
    projected = torch.randn(tokens, heads * 2 * head_dim, generator=g)
    query_states, gate = torch.chunk(projected.view(tokens, -1, head_dim * 2), 2, dim=-1)
    attention = torch.randn(tokens, heads * head_dim, generator=g)
    tensors.update({"gate.projected": projected, "gate.query": query_states.reshape(tokens, -1),
                    "gate.gate": gate.reshape(tokens, -1), "gate.attention": attention,
                    "gate.output": attention * torch.sigmoid(gate.reshape(tokens, -1))})

    tensors = {name: t.detach().to(torch.float32).contiguous() for name, t in tensors.items()}
    save_file(tensors, os.path.join(OUT, "ops.safetensors"), metadata={"format": "pt"})


def main():
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    make_ops(seed=10)
    make_text("text", tied=False, seed=0)
    make_text("text_tied", tied=True, seed=1)
    make_multimodal(seed=2)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
