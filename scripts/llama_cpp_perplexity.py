#!/usr/bin/env python3
"""Perplexity of a GGUF computed by llama.cpp itself (through llama-cpp-python), with the
llama.cpp protocol that `hlwq ppl --ctx N` implements: non-overlapping windows of N tokens, the
first token of each window replaced by BOS when the vocabulary adds BOS, the second half scored.
Prints JSON {perplexity, perplexity_stderr, tokens_scored, windows}. Optionally saves llama.cpp's
per-token negative log-likelihoods (float64, .npy) for token-level comparison.

usage: llama_cpp_perplexity.py MODEL.gguf TEXT_FILE [--ctx 512] [--threads 2] [--max-windows N]
"""
import argparse
import json
import math
import sys

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("text")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-windows", type=int, default=0)
    parser.add_argument("--save-nll", default=None)
    args = parser.parse_args()

    from llama_cpp import Llama

    llm = Llama(model_path=args.model, n_ctx=args.ctx, n_batch=args.ctx, logits_all=True,
                n_threads=args.threads, verbose=False)
    text = open(args.text, encoding="utf-8").read()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    # llama.cpp's perplexity puts BOS first in each window only when the vocabulary adds BOS.
    add_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
    bos = llm.token_bos() if add_bos else None
    windows = len(tokens) // args.ctx
    if args.max_windows:
        windows = min(windows, args.max_windows)
    nll = []
    for window in range(windows):
        chunk = list(tokens[window * args.ctx:(window + 1) * args.ctx])
        if bos is not None and bos >= 0:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[: args.ctx], dtype=np.float64)
        for position in range(args.ctx // 2, args.ctx - 1):
            row = logits[position]
            peak = row.max()
            log_sum = peak + math.log(np.exp(row - peak).sum())
            nll.append(log_sum - row[tokens[window * args.ctx + position + 1]])
    nll = np.asarray(nll)
    mean = nll.mean()
    stderr = nll.std(ddof=1) / math.sqrt(len(nll))
    if args.save_nll:
        np.save(args.save_nll, nll)
    print(json.dumps({"perplexity": math.exp(mean), "perplexity_stderr": math.exp(mean) * stderr,
                      "mean_nll": mean, "tokens_scored": len(nll), "windows": windows,
                      "tokens_in_text": len(tokens), "llama_cpp_bos": bos}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
