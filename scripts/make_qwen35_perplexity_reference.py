#!/usr/bin/env python3
"""Transformers' perplexity of the tiny random Qwen3.5 fixtures on a WikiText-2 slice, for
tests/engine/qwen35_perplexity_test.cc to hold `hlwq ppl` against (within 0.1%).

The slice: the first BYTES bytes of wiki.test.raw, each byte outside printable ASCII (newlines,
UTF-8 sequences) replaced by a space, read with a character tokenizer (byte b -> id b - 32, inside
the fixtures' 160-entry vocabulary). Protocol: llama.cpp's (non-overlapping windows of CONTEXT
tokens, no BOS, the predictions of window positions CONTEXT/2 .. CONTEXT-2 scored), transformers in
float32 on the CPU. Only the numbers are written (tests/fixtures/qwen35/<model>/wikitext_ppl.json),
never the text.

    python3 scripts/make_qwen35_perplexity_reference.py ../shared/data/wikitext-2-raw/wiki.test.raw
"""
import json
import math
import os
import sys

import torch
import transformers

BYTES = 4096
CONTEXT = 128
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def slice_ids(path):
    with open(path, "rb") as stream:
        data = stream.read(BYTES)
    return [(b if 32 <= b < 127 else 32) - 32 for b in data]


def perplexity(folder, ids):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    nlls = []
    with torch.no_grad():
        for begin in range(0, len(ids) - CONTEXT + 1, CONTEXT):
            window = torch.tensor([ids[begin:begin + CONTEXT]])
            logits = model(window).logits[0].double()
            log_probs = torch.log_softmax(logits, dim=-1)
            for j in range(CONTEXT // 2, CONTEXT - 1):
                nlls.append(-log_probs[j, window[0, j + 1]].item())
    mean = sum(nlls) / len(nlls)
    variance = sum((x - mean) ** 2 for x in nlls) / (len(nlls) - 1)
    return {"bytes": BYTES, "context": CONTEXT, "protocol": "llama.cpp, no BOS", "tokens_scored": len(nlls),
            "mean_nll": mean, "perplexity": math.exp(mean),
            "perplexity_stderr": math.exp(mean) * math.sqrt(variance / len(nlls)),
            "engine": f"transformers {transformers.__version__}, float32, CPU"}


def main():
    ids = slice_ids(sys.argv[1])
    for name in ("text",):
        folder = os.path.join(ROOT, "tests", "fixtures", "qwen35", name)
        result = perplexity(folder, ids)
        with open(os.path.join(folder, "wikitext_ppl.json"), "w") as stream:
            json.dump(result, stream, indent=1)
            stream.write("\n")
        print(name, result)


if __name__ == "__main__":
    main()
