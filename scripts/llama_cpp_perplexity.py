#!/usr/bin/env python3
"""Perplexity of a GGUF computed by llama.cpp itself (through llama-cpp-python), with the
llama.cpp protocol that `hlwq ppl --ctx N` implements (src/eval/perplexity.cc): non-overlapping
windows of N tokens over the whole text (or the first --max-windows), the first token of each
window replaced by BOS when the vocabulary adds BOS, the predictions at window positions
N/2 .. N-2 scored. PPL = exp(mean NLL) and its stderr = PPL * (sample std of the NLLs / sqrt(count)),
as hlwq computes them (NLL in double from the float logits).

With --kld-base FILE (a `hlwq ppl --save-logits FILE` of the same text, --ctx and windows; format
HLWQLGT1, src/eval/logits_file.h) it also computes the KL-divergence of llama.cpp's next-token
distributions from the saved reference, token by token as src/eval/kl_divergence.cc does: mean
+- stderr, median, p90/p99/p99.9, max, top-1 agreement, RMS change of the correct token's
probability. Targets are checked against the file's, so a tokenizer mismatch is an error.

usage: llama_cpp_perplexity.py MODEL.gguf TEXT_FILE [--ctx 512] [--threads 2] [--max-windows N]
                               [--kld-base FILE] [--save-nll FILE.npy] [--json]
--max-windows 0 (the default) scores the whole file. --save-nll keeps the per-token negative
log-likelihoods (float64 .npy) for token-level comparison.
"""
import argparse
import json
import math
import sys
import time

import numpy as np

LOGITS_MAGIC = b"HLWQLGT1"
LOGITS_HEADER_BYTES = 8 + 4 + 8


class ReferenceLogits:
    """Reads a HLWQLGT1 file: per scored token i32 target, f32 offset, f32 scale, u16[vocab]."""

    def __init__(self, path: str):
        with open(path, "rb") as file:
            header = file.read(LOGITS_HEADER_BYTES)
        if len(header) < LOGITS_HEADER_BYTES or header[:8] != LOGITS_MAGIC:
            raise SystemExit(f"not an hlwq logits file (bad magic), {path}")
        self.vocab = int(np.frombuffer(header, "<u4", 1, 8)[0])
        self.count = int(np.frombuffer(header, "<u8", 1, 12)[0])
        record = np.dtype([("target", "<i4"), ("offset", "<f4"), ("scale", "<f4"), ("values", "<u2", (self.vocab,))])
        self.records = np.memmap(path, record, "r", LOGITS_HEADER_BYTES, (self.count,))

    def target(self, index: int) -> int:
        return int(self.records[index]["target"])

    def log_probs(self, index: int) -> np.ndarray:
        # float arithmetic, as LogitsFile::log_probs decodes them.
        entry = self.records[index]
        return np.float32(entry["offset"]) + np.float32(entry["scale"]) * entry["values"].astype(np.float32)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """In double, returned as float32 (as hlwq's log_softmax)."""
    row = logits.astype(np.float64)
    peak = row.max()
    return (row - (peak + math.log(np.exp(row - peak).sum()))).astype(np.float32)


class KlDivergence:
    """Mirrors hlwq's KlDivergenceAccumulator."""

    def __init__(self):
        self.divergences = []
        self.top1_agreements = 0
        self.sum_squared_probability_change = 0.0

    def add(self, reference_log_probs: np.ndarray, logits: np.ndarray, target: int) -> None:
        log_probs = log_softmax(logits)
        # Renormalize the reference (16-bit storage leaves its mass within ~1e-4 of 1).
        reference_log_sum = math.log(np.exp(reference_log_probs.astype(np.float64)).sum())
        reference = reference_log_probs.astype(np.float64) - reference_log_sum
        divergence = float((np.exp(reference) * (reference - log_probs.astype(np.float64))).sum())
        self.divergences.append(max(0.0, divergence))
        if int(np.argmax(reference_log_probs)) == int(np.argmax(log_probs)):
            self.top1_agreements += 1
        change = math.exp(float(log_probs[target])) - math.exp(float(reference_log_probs[target]) - reference_log_sum)
        self.sum_squared_probability_change += change * change

    def to_json(self) -> dict:
        values = np.asarray(self.divergences)
        count = len(values)
        if count == 0:
            raise SystemExit("no tokens compared for KL-divergence")
        percentile = lambda q: float(np.percentile(values, q))  # noqa: E731 (linear, as hlwq)
        return {"tokens": count, "mean": float(values.mean()),
                "mean_stderr": float(values.std(ddof=1) / math.sqrt(count)) if count > 1 else 0.0,
                "median": percentile(50), "p90": percentile(90), "p99": percentile(99),
                "p99_9": percentile(99.9), "max": float(values.max()),
                "top1_agreement": self.top1_agreements / count,
                "rms_delta_p": math.sqrt(self.sum_squared_probability_change / count)}


def scored_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log(sum exp(row)) - row[target] per row, in double."""
    rows = logits.astype(np.float64)
    peaks = rows.max(axis=1, keepdims=True)
    log_sums = peaks[:, 0] + np.log(np.exp(rows - peaks).sum(axis=1))
    return log_sums - rows[np.arange(len(targets)), targets]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("text")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-windows", type=int, default=0, help="0: the whole file")
    parser.add_argument("--kld-base", default=None, help="hlwq --save-logits file of the same text and --ctx")
    parser.add_argument("--save-nll", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.ctx < 2:
        raise SystemExit("--ctx must be at least 2")

    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=args.model, n_ctx=args.ctx, n_batch=args.ctx, n_ubatch=args.ctx, logits_all=True,
                n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    with open(args.text, encoding="utf-8") as file:
        text = file.read()
    tokens = np.asarray(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False), dtype=np.int64)
    # llama.cpp's perplexity puts BOS first in each window only when the vocabulary adds BOS.
    add_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
    bos = llm.token_bos() if add_bos else None
    windows = len(tokens) // args.ctx
    if args.max_windows > 0:
        windows = min(windows, args.max_windows)
    if windows == 0:
        raise SystemExit(f"text too short: {len(tokens)} tokens for a context of {args.ctx}")

    base = ReferenceLogits(args.kld_base) if args.kld_base else None
    if base is not None and base.vocab != llm.n_vocab():
        raise SystemExit(f"vocabulary of {args.kld_base} ({base.vocab}) differs from the model's ({llm.n_vocab()})")
    divergence = KlDivergence() if base is not None else None

    first = args.ctx // 2
    nll_parts = []
    scored_index = 0
    for window in range(windows):
        begin = window * args.ctx
        chunk = tokens[begin:begin + args.ctx].tolist()
        if bos is not None and bos >= 0:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[first:args.ctx - 1], dtype=np.float32)
        targets = tokens[begin + first + 1:begin + args.ctx]
        nll_parts.append(scored_nll(logits, targets))
        if base is not None:
            for row, target in zip(logits, targets):
                if scored_index >= base.count:
                    raise SystemExit(f"--kld-base has fewer tokens ({base.count}) than this run scores; "
                                     "use the same text, --ctx and windows")
                if base.target(scored_index) != target:
                    raise SystemExit(f"--kld-base token {scored_index} differs from this run's "
                                     f"({base.target(scored_index)} vs {target}); same text, tokenizer, --ctx?")
                divergence.add(base.log_probs(scored_index), row, int(target))
                scored_index += 1
        print(f"\rppl: window {window + 1}/{windows}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if base is not None and scored_index != base.count:
        raise SystemExit(f"--kld-base has {base.count} tokens but this run scored {scored_index}; "
                         "use the same text, --ctx and --max-windows")

    nll = np.concatenate(nll_parts)
    count = len(nll)
    mean = float(nll.mean())
    mean_stderr = float(nll.std(ddof=1) / math.sqrt(count)) if count > 1 else 0.0
    if args.save_nll:
        np.save(args.save_nll, nll)
    seconds = time.perf_counter() - start
    result = {"model": args.model, "perplexity": math.exp(mean), "perplexity_stderr": math.exp(mean) * mean_stderr,
              "mean_nll": mean, "mean_nll_stderr": mean_stderr, "tokens_scored": count, "windows": windows,
              "tokens_in_text": len(tokens), "llama_cpp_bos": bos, "ctx": args.ctx, "threads": args.threads,
              "seconds": seconds}
    if divergence is not None:
        result["kl_divergence"] = divergence.to_json()
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.model}: PPL = {result['perplexity']:.4f} +/- {result['perplexity_stderr']:.4f} over {count} tokens "
          f"({windows} windows, ctx {args.ctx}{', BOS' if bos is not None else ''}; text {len(tokens)} tokens), "
          f"{seconds:.1f} s")
    if divergence is not None:
        k = result["kl_divergence"]
        print(f"KLD: mean {k['mean']:.6f} +/- {k['mean_stderr']:.6f}, median {k['median']:.6f}, p90 {k['p90']:.6f}, "
              f"p99 {k['p99']:.6f}, p99.9 {k['p99_9']:.6f}, max {k['max']:.4f}; "
              f"top-1 agreement {100 * k['top1_agreement']:.2f}%; RMS dp {100 * k['rms_delta_p']:.3f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
