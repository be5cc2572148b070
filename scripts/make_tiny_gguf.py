#!/usr/bin/env python3
"""Writes tiny random GGUF files laid out the way llama.cpp's convert_hf_to_gguf.py writes llama,
qwen2 and qwen3 checkpoints, for cross-checking `hlwq import` (scripts/check_import_architectures.py).

Each case starts from random weights in Hugging Face layout and the HF config they belong to, and
writes what llama.cpp's converter would write for them:
  - metadata: <arch>.block_count, context_length, embedding_length, feed_forward_length,
    attention.head_count / head_count_kv, rope.freq_base, attention.layer_norm_rms_epsilon,
    attention.key_length / value_length when the config states head_dim, and for llama
    vocab_size and rope.dimension_count; rope.scaling.* for linear / yarn scaling;
  - tensors under llama.cpp's names; for llama only, the rows of Q and K (weights and biases)
    interleaved per head (LlamaModel.permute); llama3 rope scaling as a rope_freqs.weight tensor of
    per-frequency divisors (LlamaModel.generate_extra_tensors); output.weight only when untied;
  - 1-D tensors (norms, biases) in F32, matrices in the F32 / F16 / BF16 / Q8_0 the case picks;
  - a small byte-level BPE tokenizer ("gpt2" model) with merges learnt from a few sentences,
    control tokens, and "[PAD<id>]" filler up to the embedding's row count, as llama.cpp pads.
Alongside comes what an exact import must give back: the HF config, and every HF tensor after its
round trip through its GGUF type (quantization works along rows, so it commutes with the row
interleave: the expected Q is simply the round-tripped HF Q).

Usage: make_tiny_gguf.py OUT_DIR [CASE ...]   (writes CASE.gguf and CASE.config.json; default: all)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import re
import sys
from collections import Counter

import numpy as np

F32, F16, BF16, Q8_0 = "F32", "F16", "BF16", "Q8_0"


@dataclasses.dataclass(frozen=True)
class TinyCase:
    name: str
    architecture: str  # GGUF general.architecture: llama, qwen2 or qwen3
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    head_dim: int | None = None  # None: hidden / heads, and not stated in the config
    intermediate: int = 96
    layers: int = 2
    vocab: int = 320
    tied: bool = True
    attention_bias: bool = False  # llama: q/k/v/o biases (HF attention_bias); qwen2 always has q/k/v biases
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    context: int = 2048
    rope_scaling: dict | None = None
    matrix_types: tuple[str, ...] = (F32, F16, Q8_0)  # cycled over the matrices
    pre_tokenizer: str = "llama-bpe"
    seed: int = 0
    # What transformers' own GGUF loader does with this file: "exact" (same model as the truth),
    # or why not; only "exact" cases are compared against it strictly.
    transformers_gguf: str = "exact"

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden // self.heads


CASES = [
    TinyCase("llama", "llama", tied=False, intermediate=160, rms_norm_eps=1e-5, rope_theta=100000.0,
             matrix_types=(Q8_0, F16, F32, BF16)),
    TinyCase("qwen2", "qwen2", tied=True, rope_theta=1000000.0, rms_norm_eps=1e-6, pre_tokenizer="qwen2",
             matrix_types=(F16, Q8_0, BF16, F32), seed=1),
    # Qwen3's real head_dim (128) differs from hidden / heads, as here.
    TinyCase("qwen3", "qwen3", tied=False, head_dim=128, rope_theta=1000000.0, rms_norm_eps=1e-6,
             pre_tokenizer="qwen2", matrix_types=(BF16, F32, Q8_0, F16), seed=2),
    TinyCase("qwen3_head_dim_32", "qwen3", tied=True, head_dim=32, rope_theta=1000000.0, rms_norm_eps=1e-6,
             pre_tokenizer="qwen2", seed=3,
             transformers_gguf="ignores qwen3.attention.key_length (uses Qwen3Config's default head_dim 128)"),
    TinyCase("llama_bias", "llama", tied=True, attention_bias=True, seed=4,
             transformers_gguf="ignores the attention biases (config attention_bias stays false)"),
    # Llama 3.2's scaling; head_dim 64 with theta 500000 puts three frequencies in the smooth band.
    TinyCase("llama3_rope", "llama", hidden=128, heads=2, kv_heads=1, tied=True, rope_theta=500000.0,
             context=131072, seed=5,
             rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
             transformers_gguf="ignores rope_freqs.weight (drops llama3 rope scaling)"),
    TinyCase("qwen2_yarn", "qwen2", tied=True, rope_theta=1000000.0, rms_norm_eps=1e-6, context=131072,
             pre_tokenizer="qwen2", seed=6,
             rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
             transformers_gguf="ignores rope.scaling.* (drops yarn rope scaling)"),
]
CASES_BY_NAME = {case.name: case for case in CASES}

HF_CLASSES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def hf_config(case: TinyCase) -> dict:
    """The Hugging Face config the random weights belong to (the truth an import must recover)."""
    config = {
        "architectures": [HF_CLASSES[case.architecture]],
        "model_type": case.architecture,
        "hidden_size": case.hidden,
        "intermediate_size": case.intermediate,
        "num_hidden_layers": case.layers,
        "num_attention_heads": case.heads,
        "num_key_value_heads": case.kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": case.context,
        "rms_norm_eps": case.rms_norm_eps,
        "rope_theta": case.rope_theta,
        "vocab_size": case.vocab,
        "tie_word_embeddings": case.tied,
        "bos_token_id": special_token_ids(case)["bos"],
        "eos_token_id": special_token_ids(case)["eos"],
    }
    if case.head_dim is not None:
        config["head_dim"] = case.head_dim
    if case.architecture == "llama":
        config["attention_bias"] = case.attention_bias
    if case.rope_scaling is not None:
        config["rope_scaling"] = dict(case.rope_scaling)
    return config


def hf_tensor_shapes(case: TinyCase) -> dict[str, tuple[int, ...]]:
    """Every tensor of the HF checkpoint, in checkpoint order."""
    hidden, head_dim = case.hidden, case.resolved_head_dim
    q_rows, kv_rows = case.heads * head_dim, case.kv_heads * head_dim
    shapes = {"model.embed_tokens.weight": (case.vocab, hidden)}
    for layer in range(case.layers):
        prefix = f"model.layers.{layer}."
        shapes[prefix + "input_layernorm.weight"] = (hidden,)
        shapes[prefix + "self_attn.q_proj.weight"] = (q_rows, hidden)
        shapes[prefix + "self_attn.k_proj.weight"] = (kv_rows, hidden)
        shapes[prefix + "self_attn.v_proj.weight"] = (kv_rows, hidden)
        shapes[prefix + "self_attn.o_proj.weight"] = (hidden, q_rows)
        if case.architecture == "qwen2" or case.attention_bias:
            shapes[prefix + "self_attn.q_proj.bias"] = (q_rows,)
            shapes[prefix + "self_attn.k_proj.bias"] = (kv_rows,)
            shapes[prefix + "self_attn.v_proj.bias"] = (kv_rows,)
        if case.attention_bias:
            shapes[prefix + "self_attn.o_proj.bias"] = (hidden,)
        if case.architecture == "qwen3":
            shapes[prefix + "self_attn.q_norm.weight"] = (head_dim,)
            shapes[prefix + "self_attn.k_norm.weight"] = (head_dim,)
        shapes[prefix + "post_attention_layernorm.weight"] = (hidden,)
        shapes[prefix + "mlp.gate_proj.weight"] = (case.intermediate, hidden)
        shapes[prefix + "mlp.up_proj.weight"] = (case.intermediate, hidden)
        shapes[prefix + "mlp.down_proj.weight"] = (hidden, case.intermediate)
    shapes["model.norm.weight"] = (hidden,)
    if not case.tied:
        shapes["lm_head.weight"] = (case.vocab, hidden)
    return shapes


GGUF_LAYER_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
GGUF_GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                     "lm_head.weight": "output.weight"}


def gguf_tensor_name(hf_name: str) -> str:
    if hf_name in GGUF_GLOBAL_NAMES:
        return GGUF_GLOBAL_NAMES[hf_name]
    match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", hf_name)
    return f"blk.{match[1]}.{GGUF_LAYER_NAMES[match[2]]}.{match[3]}"


def interleave_rotary_halves(rows: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: per head, row b*d/2 + a moves to row 2a + b."""
    head_rows = rows.shape[0] // heads
    return rows.reshape(heads, 2, head_rows // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def random_weights(case: TinyCase) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(case.seed)
    weights = {}
    for name, shape in hf_tensor_shapes(case).items():
        if name.endswith("norm.weight"):
            values = 1.0 + 0.2 * generator.standard_normal(shape)
        elif name.endswith(".bias"):
            values = 0.2 * generator.standard_normal(shape)
        elif name == "model.embed_tokens.weight":
            values = generator.standard_normal(shape)
        else:  # keeps activations of order one through the layers
            values = generator.standard_normal(shape) / math.sqrt(shape[1])
        weights[name] = values.astype(np.float32)
    return weights


def gguf_type(case: TinyCase, hf_name: str, index: int) -> str:
    if len(hf_tensor_shapes(case)[hf_name]) == 1:
        return F32  # llama.cpp keeps 1-D tensors in F32
    return case.matrix_types[index % len(case.matrix_types)]


def encode_tensor(values: np.ndarray, type_name: str):
    """(array for GGUFWriter.add_tensor, raw_dtype or None, values after the round trip)."""
    import gguf

    if type_name == F32:
        return values, None, values
    if type_name == F16:
        half = values.astype(np.float16)
        return half, None, half.astype(np.float32)
    quant_type = gguf.GGMLQuantizationType[type_name]
    packed = gguf.quants.quantize(values, quant_type)
    return packed, quant_type, gguf.quants.dequantize(packed, quant_type).reshape(values.shape)


def llama3_rope_divisors(case: TinyCase) -> np.ndarray:
    """rope_freqs.weight as llama.cpp's converter computes it for rope_type llama3."""
    scaling = case.rope_scaling
    dim = case.resolved_head_dim
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = 8192  # llama.cpp reads original_max_position_embeddings from the top level, default 8192
    divisors = []
    for index in range(0, dim, 2):
        wavelength = 2 * math.pi * case.rope_theta ** (index / dim)
        if wavelength < old_context / high:
            divisors.append(1.0)
        elif wavelength > old_context / low:
            divisors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            divisors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(divisors, dtype=np.float32)


# ---- tokenizer -------------------------------------------------------------------------------

TOKENIZER_TEXT = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs "
    "into the forest. Hello world! There is nothing in the world that the fox does not know. "
    "1234 5678 90, then they went home and the story ended there."
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGE_COUNT = 48


def byte_alphabet() -> list[str]:
    """GPT-2's printable spelling of the 256 byte values (printable Latin-1 bytes stand for
    themselves; the others are shifted past 255)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
                 + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    spelling, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            spelling[byte] = chr(byte)
        else:
            spelling[byte] = chr(256 + shifted)
            shifted += 1
    return [spelling[byte] for byte in range(256)]


def learn_merges(text: str, count: int) -> list[tuple[str, str]]:
    """Plain byte-level BPE training on `text` split into words with their leading space."""
    alphabet = byte_alphabet()
    words = Counter(tuple(alphabet[byte] for byte in word.encode("utf-8"))
                    for word in re.findall(r" ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+", text))
    merges = []
    for _ in range(count):
        pairs = Counter()
        for word, frequency in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += frequency
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]  # ties: fixed order
        merges.append(best)
        merged = Counter()
        for word, frequency in words.items():
            out, position = [], 0
            while position < len(word):
                if position + 1 < len(word) and (word[position], word[position + 1]) == best:
                    out.append(word[position] + word[position + 1])
                    position += 2
                else:
                    out.append(word[position])
                    position += 1
            merged[tuple(out)] += frequency
        words = merged
    return merges


def tokenizer_vocabulary(vocab_size: int):
    """(tokens, token types, merges): bytes, merged tokens, control tokens, then [PAD<id>] filler."""
    import gguf

    merges = learn_merges(TOKENIZER_TEXT, MERGE_COUNT)
    tokens = byte_alphabet() + [left + right for left, right in merges]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    tokens += SPECIAL_TOKENS
    types += [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    assert len(set(tokens)) == len(tokens) and len(tokens) <= vocab_size
    for index in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{index}]")
        types.append(gguf.TokenType.UNUSED)
    return tokens, types, [f"{left} {right}" for left, right in merges]


def special_token_ids(case: TinyCase) -> dict[str, int]:
    first = 256 + MERGE_COUNT
    return {"bos": first, "eos": first + 2, "pad": first}


# ---- writer ----------------------------------------------------------------------------------

def write_gguf(case: TinyCase, path: pathlib.Path) -> dict[str, np.ndarray]:
    """Writes the case's GGUF to `path`; returns the HF tensors it stands for (after round trips)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), case.architecture)
    writer.add_name(f"tiny-{case.name}")
    writer.add_context_length(case.context)
    writer.add_embedding_length(case.hidden)
    writer.add_block_count(case.layers)
    writer.add_feed_forward_length(case.intermediate)
    writer.add_head_count(case.heads)
    writer.add_head_count_kv(case.kv_heads)
    writer.add_rope_freq_base(case.rope_theta)
    writer.add_layer_norm_rms_eps(case.rms_norm_eps)
    if case.head_dim is not None:
        writer.add_key_length(case.head_dim)
        writer.add_value_length(case.head_dim)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    if case.architecture == "llama":
        writer.add_vocab_size(case.vocab)
        writer.add_rope_dimension_count(case.resolved_head_dim)
    scaling = case.rope_scaling or {}
    if scaling.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(scaling["factor"])
    elif scaling.get("rope_type") == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(scaling["factor"])
        writer.add_rope_scaling_orig_ctx_len(scaling["original_max_position_embeddings"])

    tokens, types, merges = tokenizer_vocabulary(case.vocab)
    special = special_token_ids(case)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(case.pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(special["bos"])
    writer.add_eos_token_id(special["eos"])
    writer.add_pad_token_id(special["pad"])
    writer.add_add_bos_token(case.architecture == "llama")

    if scaling.get("rope_type") == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_divisors(case))
    expected = {}
    for index, (name, values) in enumerate(random_weights(case).items()):
        type_name = gguf_type(case, name, index)
        stored = values
        if case.architecture == "llama" and ".self_attn.q_proj." in name:
            stored = interleave_rotary_halves(values, case.heads)
        elif case.architecture == "llama" and ".self_attn.k_proj." in name:
            stored = interleave_rotary_halves(values, case.kv_heads)
        data, raw_type, _ = encode_tensor(np.ascontiguousarray(stored), type_name)
        _, _, round_trip = encode_tensor(values, type_name)  # row-wise types: same as un-interleaving
        writer.add_tensor(gguf_tensor_name(name), data, raw_dtype=raw_type)
        expected[name] = round_trip
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("cases", nargs="*", default=[case.name for case in CASES])
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.cases:
        case = CASES_BY_NAME[name]
        path = args.out_dir / f"{name}.gguf"
        write_gguf(case, path)
        (args.out_dir / f"{name}.config.json").write_text(json.dumps(hf_config(case), indent=2) + "\n")
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
