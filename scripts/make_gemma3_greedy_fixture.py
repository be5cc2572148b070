#!/usr/bin/env python3
"""Writes tests/fixtures/engine/gemma3_270m_llama_cpp_greedy.json: llama.cpp's (llama-cpp-python)
prompt ids and first greedy tokens for Gemma 3 270M, read by tests/engine/gemma3_model_test.cc.

Run it on the F32 reference GGUF (scripts/make_reference_gguf.py of the Q4_K_M file), the same
weights `hlwq import` gives hlwq, so that llama.cpp computes without quantized dot products:

  scripts/make_gemma3_greedy_fixture.py gemma3-ref.F32.gguf [--tokens 8] [--hf-folder FOLDER]
Per greedy step it also records the margin between the best and second-best logit, so the test
can tell a real disagreement from a near tie. With --hf-folder (`hlwq import --dtype f32` of the
same GGUF) it also stores transformers' float32 logits on that folder: the 16 largest (and their
ids) at every prompt position, which checks that the imported folder is what transformers expects.
"""
import argparse
import json
import os

import numpy as np
from llama_cpp import Llama

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "engine", "gemma3_270m_llama_cpp_greedy.json")
PROMPT = "The capital of France is"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf")
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--hf-folder")
    parser.add_argument("--top", type=int, default=16)
    args = parser.parse_args()
    llm = Llama(model_path=args.gguf, n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=True, special=False)
    llm.eval(ids)
    generated, margins = [], []
    for _ in range(args.tokens):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        order = np.argsort(-logits)
        generated.append(int(order[0]))
        margins.append(round(float(logits[order[0]] - logits[order[1]]), 4))
        llm.eval([int(order[0])])
    record = {"prompt": PROMPT, "prompt_ids": [int(i) for i in ids], "greedy_ids": generated,
              "greedy_margins": margins,
              "greedy_text": llm.detokenize(generated).decode("utf-8", "replace")}
    if args.hf_folder:
        import torch
        import transformers
        model = transformers.AutoModelForCausalLM.from_pretrained(args.hf_folder, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double().numpy()
        indices = np.argsort(-logits, axis=1)[:, :args.top]
        values = np.take_along_axis(logits, indices, axis=1)
        record["transformers_top_indices"] = indices.tolist()
        record["transformers_top_values"] = [[round(float(v), 5) for v in row] for row in values]
    with open(OUT, "w") as f:
        json.dump(record, f, indent=1)
    print(record)


if __name__ == "__main__":
    main()
