#!/usr/bin/env python3
"""Perplexity of a GGUF computed by llama.cpp itself (through llama-cpp-python), with either
protocol of `hlwq ppl` (src/eval/perplexity.cc), window by window as hlwq plans them:
  - llama.cpp protocol (--stride 0, the default): non-overlapping windows of --ctx tokens over the
    whole text (or the first --max-windows), the first token of each window replaced by BOS when
    the vocabulary adds BOS, the predictions at window positions ctx/2 .. ctx-2 scored;
  - sliding windows (--stride S, as `hlwq ppl --ctx N --stride S`): windows of --ctx tokens starting
    every S tokens, no BOS, each token after the first scored once (in the first window that
    predicts it); the last window ends at the end of the text and may be shorter. --max-windows N
    keeps the first (N-1)*S + ctx tokens, as hlwq does.
PPL = exp(mean NLL) and its stderr = PPL * (sample std of the NLLs / sqrt(count)), as hlwq computes
them (NLL in double from the float logits).

With --kld-base FILE (a `hlwq ppl --save-logits FILE` of the same text, --ctx, --stride and windows;
format HLWQLGT1, src/eval/logits_file.h) it also computes the KL-divergence of llama.cpp's
next-token distributions from the saved reference, per token as src/eval/kl_divergence.cc does:
mean +- stderr, median, p90/p99/p99.9, max, top-1 agreement, RMS change of the correct token's
probability. Targets are checked against the file's, so a tokenizer mismatch is an error. A
window's reference rows are read in one slice and its statistics computed with whole-array numpy
operations in double, over blocks of rows small enough to stay in the CPU's cache.

usage: llama_cpp_perplexity.py MODEL.gguf TEXT_FILE [--ctx 512] [--stride 0] [--threads 2]
                               [--max-windows N] [--kld-base FILE] [--save-nll FILE.npy] [--json]
                               [--windows A:B --save-parts PART.npz]
       llama_cpp_perplexity.py --merge PART.npz... [--json]
--max-windows 0 (the default) scores the whole file. --save-nll keeps the per-token negative
log-likelihoods (float64 .npy) for token-level comparison. The JSON reports eval_seconds
(llama.cpp's forward passes) and stats_seconds (the likelihoods and divergences). The eval is
nearly all the time (about 3.5 s per 512-token window of the demo on one core, the statistics
0.1-0.2 s); ggml's threads spin at barriers, so on a machine with other work, processes of
--threads 1 side by side beat fewer processes of more threads (docs/NOTES.md).

A run can be split: --windows A:B scores windows A..B-1 of it (numbered from 0; --kld-base is still
the whole run's file) and --save-parts keeps that part's per-token values (NLL, divergence, top-1
agreement, probability change: about 25 bytes a token); --merge then gives the whole run's result
from parts that cover its windows once, equal to an unsplit run's up to the order of a few sums.
Parts can run side by side, or on machines that are not kept long enough for a whole run.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

LOGITS_MAGIC = b"HLWQLGT1"
LOGITS_HEADER_BYTES = 8 + 4 + 8
# The statistics of a window run over blocks of rows of about this many values (1 MiB per double
# array): a block stays in the CPU's cache through its dozen numpy passes. On 2 cores, 255 rows of a
# 49k vocabulary took 1.4 s in blocks of 64 rows (25 MB arrays) and 0.5 s in blocks of 1-2 rows.
VALUES_PER_BLOCK = 1 << 17


class ReferenceLogits:
    """Reads a HLWQLGT1 file: per scored token i32 target, f32 offset, f32 scale, u16[vocab]."""

    def __init__(self, path: str):
        with open(path, "rb") as file:
            header = file.read(LOGITS_HEADER_BYTES)
        if len(header) < LOGITS_HEADER_BYTES or header[:8] != LOGITS_MAGIC:
            raise SystemExit(f"not an hlwq logits file (bad magic), {path}")
        self.path = path
        self.vocab = int(np.frombuffer(header, "<u4", 1, 8)[0])
        self.count = int(np.frombuffer(header, "<u8", 1, 12)[0])
        record = np.dtype([("target", "<i4"), ("offset", "<f4"), ("scale", "<f4"), ("values", "<u2", (self.vocab,))])
        self.records = np.memmap(path, record, "r", LOGITS_HEADER_BYTES, (self.count,))

    def read(self, begin: int, end: int) -> np.ndarray:
        """Records begin..end-1 in one read."""
        return np.array(self.records[begin:end])


def decode_log_probs(records: np.ndarray) -> np.ndarray:
    """Float32 rows from HLWQLGT1 records, in float arithmetic as LogitsFile::log_probs decodes them."""
    return records["offset"][:, None] + records["scale"][:, None] * records["values"].astype(np.float32)


class KlDivergence:
    """Mirrors hlwq's KlDivergenceAccumulator, fed a block of rows at a time; keeps the per-token
    values, so that runs over parts of the windows can be merged."""

    def __init__(self):
        self.divergences = []
        self.top1_agreements = []
        self.probability_changes = []

    def add(self, reference_log_probs: np.ndarray, log_probs: np.ndarray, targets: np.ndarray) -> None:
        """reference_log_probs: float32 rows as stored; log_probs: the model's float32 log-softmax
        rows (hlwq's log_softmax rounds to float too); targets: the correct next tokens."""
        rows = np.arange(len(targets))
        # Renormalize the reference (16-bit storage leaves its mass within ~1e-4 of 1). Its values
        # are log-probabilities (at most ~1e-4 above 0), so exp needs no shift by the maximum.
        reference = reference_log_probs.astype(np.float64)
        probabilities = np.exp(reference)
        sums = probabilities.sum(axis=1)
        reference_log_sums = np.log(sums)
        probabilities /= sums[:, None]  # = exp(reference - log sum), to an ulp or so
        reference -= reference_log_sums[:, None]
        reference -= log_probs  # (in double)
        reference *= probabilities
        self.divergences.append(np.maximum(0.0, reference.sum(axis=1)))
        self.top1_agreements.append(reference_log_probs.argmax(axis=1) == log_probs.argmax(axis=1))
        self.probability_changes.append(
            np.exp(log_probs[rows, targets].astype(np.float64))
            - np.exp(reference_log_probs[rows, targets].astype(np.float64) - reference_log_sums))

    def arrays(self) -> dict:
        join = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
        return {"divergence": join(self.divergences, np.float64), "top1": join(self.top1_agreements, bool),
                "probability_change": join(self.probability_changes, np.float64)}


def divergence_json(divergence: np.ndarray, top1: np.ndarray, probability_change: np.ndarray) -> dict:
    """hlwq's KlDivergenceAccumulator::to_json over per-token values."""
    count = len(divergence)
    if count == 0:
        raise SystemExit("no tokens compared for KL-divergence")
    percentile = lambda q: float(np.percentile(divergence, q))  # noqa: E731 (linear, as hlwq)
    return {"tokens": count, "mean": float(divergence.mean()),
            "mean_stderr": float(divergence.std(ddof=1) / math.sqrt(count)) if count > 1 else 0.0,
            "median": percentile(50), "p90": percentile(90), "p99": percentile(99),
            "p99_9": percentile(99.9), "max": float(divergence.max()),
            "top1_agreement": int(top1.sum()) / count,
            "rms_delta_p": math.sqrt(float((probability_change * probability_change).sum()) / count)}


def log_softmax_rows(logits: np.ndarray, targets: np.ndarray):
    """Per float32 row, in double: the negative log-likelihood of its target, log(sum exp(row)) -
    row[target], and the log-softmax rounded to float32 (as hlwq's log_softmax)."""
    peaks = logits.max(axis=1, keepdims=True).astype(np.float64)
    shifted = np.subtract(logits, peaks, dtype=np.float64)
    np.exp(shifted, out=shifted)
    log_sums = peaks[:, 0] + np.log(shifted.sum(axis=1))
    negative_log_likelihoods = log_sums - logits[np.arange(len(targets)), targets].astype(np.float64)
    log_probs = np.subtract(logits, log_sums[:, None], dtype=np.float64)
    return negative_log_likelihoods, log_probs.astype(np.float32)


def perplexity_windows(token_count: int, context: int, stride: int) -> list:
    """(begin, end, first_scored) per window, as hlwq's perplexity_windows: predictions at window
    positions first_scored .. end-begin-2 are scored."""
    if stride == 0:
        return [(begin, begin + context, context // 2) for begin in range(0, token_count - context + 1, context)]
    windows = []
    scored_until = 1  # tokens [1, scored_until) are already scored
    begin = 0
    while scored_until < token_count:
        end = min(begin + context, token_count)
        windows.append((begin, end, max(0, scored_until - 1 - begin)))
        scored_until = end
        if end == token_count:
            break
        begin += stride
    return windows


def summarize(nll: np.ndarray, divergence, settings: dict) -> dict:
    """The run's JSON from its per-token values (divergence: KlDivergence.arrays() or None)."""
    count = len(nll)
    mean = float(nll.mean())
    mean_stderr = float(nll.std(ddof=1) / math.sqrt(count)) if count > 1 else 0.0
    result = dict(settings, perplexity=math.exp(mean), perplexity_stderr=math.exp(mean) * mean_stderr,
                  mean_nll=mean, mean_nll_stderr=mean_stderr, tokens_scored=count)
    if divergence is not None:
        result["kl_divergence"] = divergence_json(**divergence)
    return result


def print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    print(f"{result['model']}: PPL = {result['perplexity']:.4f} +/- {result['perplexity_stderr']:.4f} over "
          f"{result['tokens_scored']} tokens ({result['windows']} windows, {result['protocol']}; text "
          f"{result['tokens_in_text']} tokens), {result['seconds']:.1f} s (llama.cpp eval {result['eval_seconds']:.1f} s, "
          f"statistics {result['stats_seconds']:.1f} s)")
    if "kl_divergence" in result:
        k = result["kl_divergence"]
        print(f"KLD: mean {k['mean']:.6f} +/- {k['mean_stderr']:.6f}, median {k['median']:.6f}, p90 {k['p90']:.6f}, "
              f"p99 {k['p99']:.6f}, p99.9 {k['p99_9']:.6f}, max {k['max']:.4f}; "
              f"top-1 agreement {100 * k['top1_agreement']:.2f}%; RMS dp {100 * k['rms_delta_p']:.3f}%")


# Settings that must agree between the parts of one run.
PART_KEYS = ("model", "protocol", "tokens_in_text", "llama_cpp_bos", "ctx", "stride", "windows", "kld")


def merge_parts(paths: list) -> dict:
    """The result of a whole run from --save-parts files that together cover its windows once."""
    parts = []
    for path in paths:
        with np.load(path) as part:
            parts.append((json.loads(str(part["settings"])), {key: part[key] for key in part.files if key != "settings"}))
    parts.sort(key=lambda part: part[0]["window_range"][0])
    first = parts[0][0]
    expected_begin = 0
    for settings, _ in parts:
        different = [key for key in PART_KEYS if settings.get(key) != first.get(key)]
        if different:
            raise SystemExit(f"parts of different runs ({', '.join(different)} differ), {settings['model']}")
        begin, end = settings["window_range"]
        if begin != expected_begin:
            raise SystemExit(f"parts do not cover windows {expected_begin}..{begin - 1} once, {first['model']}")
        expected_begin = end
    if expected_begin != first["windows"]:
        raise SystemExit(f"parts end at window {expected_begin} of {first['windows']}, {first['model']}")
    join = lambda key: np.concatenate([values[key] for _, values in parts])  # noqa: E731
    divergence = ({key: join(key) for key in ("divergence", "top1", "probability_change")} if first["kld"]
                  else None)
    settings = {key: first[key] for key in PART_KEYS if key != "kld"}
    settings.update(threads=first["threads"], parts=len(parts),
                    **{key: sum(part[0][key] for part in parts) for key in ("seconds", "eval_seconds", "stats_seconds")})
    return summarize(join("nll"), divergence, settings)


def parse_window_range(text: str, count: int) -> tuple:
    try:
        begin, end = (int(value) if value else default for value, default in zip(text.split(":"), (0, count)))
    except ValueError:
        raise SystemExit(f"--windows takes A:B (window numbers from 0, B excluded), got {text!r}")
    end = min(end, count)
    if not 0 <= begin < end:
        raise SystemExit(f"--windows {text} selects no window of the {count}")
    return begin, end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("text", nargs="?")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--stride", type=int, default=0, help="0: llama.cpp protocol; S: sliding windows every S tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-windows", type=int, default=0, help="0: the whole file")
    parser.add_argument("--windows", default=None,
                        help="A:B: score only windows A..B-1 (from 0) of the run; with --save-parts, for --merge")
    parser.add_argument("--kld-base", default=None,
                        help="hlwq --save-logits file of the same text, --ctx, --stride and windows (the whole run)")
    parser.add_argument("--save-parts", default=None, help="FILE.npz: this run's per-token values, for --merge")
    parser.add_argument("--merge", nargs="+", default=None, metavar="PART.npz",
                        help="no model: the result of a run from --save-parts files covering its windows")
    parser.add_argument("--save-nll", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.merge:
        print_result(merge_parts(args.merge), args.json)
        return 0
    if not args.model or not args.text:
        parser.error("MODEL and TEXT are required (except with --merge)")
    if args.ctx < 2:
        raise SystemExit("--ctx must be at least 2")
    if args.stride < 0 or args.stride > args.ctx:
        raise SystemExit(f"--stride must be between 1 and --ctx (got {args.stride})")

    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=args.model, n_ctx=args.ctx, n_batch=args.ctx, n_ubatch=args.ctx, logits_all=True,
                n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    with open(args.text, encoding="utf-8") as file:
        text = file.read()
    tokens = np.asarray(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False), dtype=np.int64)
    # llama.cpp's perplexity puts BOS first in each window only when the vocabulary adds BOS; the
    # sliding protocol never does (as hlwq).
    add_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
    bos = llm.token_bos() if add_bos and args.stride == 0 else None
    usable = len(tokens)
    if args.max_windows > 0:
        limit = args.max_windows * args.ctx if args.stride == 0 else (args.max_windows - 1) * args.stride + args.ctx
        usable = min(usable, limit)
    windows = perplexity_windows(usable, args.ctx, args.stride)
    if not windows:
        raise SystemExit(f"text too short: {usable} tokens for a context of {args.ctx}")
    first_window, end_window = parse_window_range(args.windows, len(windows)) if args.windows else (0, len(windows))

    base = ReferenceLogits(args.kld_base) if args.kld_base else None
    if base is not None and base.vocab != llm.n_vocab():
        raise SystemExit(f"vocabulary of {args.kld_base} ({base.vocab}) differs from the model's ({llm.n_vocab()})")
    divergence = KlDivergence() if base is not None else None

    nll_parts = []
    # Tokens scored in earlier windows: this run's first row in --kld-base.
    scored_index = sum(end - begin - 1 - first_scored for begin, end, first_scored in windows[:first_window])
    eval_seconds = stats_seconds = 0.0
    for number in range(first_window, end_window):
        begin, end, first_scored = windows[number]
        chunk = tokens[begin:end].tolist()
        if bos is not None and bos >= 0:
            chunk[0] = bos
        eval_start = time.perf_counter()
        llm.reset()
        llm.eval(chunk)
        stats_start = time.perf_counter()
        eval_seconds += stats_start - eval_start
        length = end - begin
        count = length - 1 - first_scored
        targets = tokens[begin + first_scored + 1:end]
        if base is not None:
            if scored_index + count > base.count:
                raise SystemExit(f"--kld-base has fewer tokens ({base.count}) than this run scores; "
                                 "use the same text, --ctx, --stride and windows")
            reference_records = base.read(scored_index, scored_index + count)
            saved = reference_records["target"].astype(np.int64)
            mismatch = np.flatnonzero(saved != targets)
            if len(mismatch):
                index = int(mismatch[0])
                raise SystemExit(f"--kld-base token {scored_index + index} differs from this run's "
                                 f"({saved[index]} vs {targets[index]}); same text, tokenizer, --ctx, --stride?")
        rows_per_block = max(1, VALUES_PER_BLOCK // llm.n_vocab())
        for row in range(0, count, rows_per_block):
            rows = slice(row, min(row + rows_per_block, count))
            logits = np.asarray(llm.scores[first_scored + rows.start:first_scored + rows.stop], dtype=np.float32)
            negative_log_likelihoods, log_probs = log_softmax_rows(logits, targets[rows])
            nll_parts.append(negative_log_likelihoods)
            if base is not None:
                divergence.add(decode_log_probs(reference_records[rows]), log_probs, targets[rows])
        scored_index += count
        stats_seconds += time.perf_counter() - stats_start
        print(f"\rppl: window {number + 1}/{len(windows)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if base is not None and end_window == len(windows) and scored_index != base.count:
        raise SystemExit(f"--kld-base has {base.count} tokens but this run scored {scored_index}; "
                         "use the same text, --ctx, --stride and --max-windows")

    nll = np.concatenate(nll_parts)
    if args.save_nll:
        np.save(args.save_nll, nll)
    protocol = (f"llama.cpp, ctx {args.ctx}{', BOS' if bos is not None else ''}" if args.stride == 0
                else f"sliding, ctx {args.ctx}, stride {args.stride}")
    settings = {"model": args.model, "protocol": protocol, "windows": len(windows), "tokens_in_text": len(tokens),
                "llama_cpp_bos": bos, "ctx": args.ctx, "stride": args.stride, "threads": args.threads,
                "seconds": time.perf_counter() - start, "eval_seconds": eval_seconds, "stats_seconds": stats_seconds}
    if args.windows:
        settings["window_range"] = [first_window, end_window]
    arrays = divergence.arrays() if divergence is not None else None
    if args.save_parts:
        part_settings = dict(settings, window_range=[first_window, end_window], kld=arrays is not None)
        partial = args.save_parts + ".partial.npz"
        np.savez(partial, settings=np.array(json.dumps(part_settings)), nll=nll, **(arrays or {}))
        os.replace(partial, args.save_parts)
    print_result(summarize(nll, arrays, settings), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
