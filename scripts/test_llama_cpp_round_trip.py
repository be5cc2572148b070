#!/usr/bin/env python3
"""Checks scripts/llama_cpp_round_trip.py's tensor mapping without llama.cpp: llama.cpp's tensor
names -> the folder's, which tensors count as linear weights, and the row matching that puts
llama.cpp's permuted q/k rows back in the folder's order (and refuses rows that are not the folder's).

  python3 scripts/test_llama_cpp_round_trip.py      # exit status 0: every check passed
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cpp_round_trip as rt  # noqa: E402

failures = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)


def main():
    check(rt.dense_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight", "attn_q -> q_proj")
    check(rt.dense_name("blk.0.ffn_down.weight") == "model.layers.0.mlp.down_proj.weight", "ffn_down -> down_proj")
    check(rt.dense_name("blk.12.attn_output.weight") == "model.layers.12.self_attn.o_proj.weight", "attn_output -> o_proj")
    check(rt.dense_name("token_embd.weight") == "model.embed_tokens.weight", "token_embd -> embed_tokens")
    check(rt.dense_name("blk.1.ffn_norm.weight") == "model.layers.1.post_attention_layernorm.weight",
          "ffn_norm -> post_attention_layernorm")
    check(rt.dense_name("blk.1.attn_q_norm.weight") is None, "an unknown tensor has no name (the script fails if llama.cpp quantized it)")
    check(rt.is_linear("blk.5.ffn_gate.weight") and not rt.is_linear("token_embd.weight")
          and not rt.is_linear("blk.5.attn_norm.weight"), "linear weights: the layers' projections only")

    rng = np.random.default_rng(3)
    dense = rng.standard_normal((12, 8)).astype(np.float32)
    check(rt.row_order(dense.copy(), dense, "x") is None, "equal tensors: no reordering")
    # llama.cpp's q/k permutation: per head, the rotary pairs' halves interleaved.
    heads = 2
    permuted = dense.reshape(heads, 2, 12 // heads // 2, 8).swapaxes(1, 2).reshape(12, 8)
    order = rt.row_order(permuted, dense, "q")
    check(order is not None and np.array_equal(dense[order], permuted), "permuted rows: stored[i] == dense[order[i]]")
    restored = np.empty_like(permuted)
    restored[order] = permuted * 2  # what the script does with the read-back values
    check(np.array_equal(restored, dense * 2), "read-back rows put back in the folder's order")
    try:
        rt.row_order(permuted + 1e-3, dense, "q")
        check(False, "rows that are not the folder's are refused")
    except SystemExit:
        check(True, "rows that are not the folder's are refused")
    try:
        rt.row_order(dense[:6], dense, "q")
        check(False, "a shape mismatch is refused")
    except SystemExit:
        check(True, "a shape mismatch is refused")
    if failures:
        print(f"{len(failures)} failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
