#!/usr/bin/env python3
"""llama.cpp's CPU speed on a GGUF for the workload of `hlwq bench` (src/eval/bench.cc), through
llama-cpp-python's low-level API (llama_decode directly, no sampler):
  - prompt: P token ids drawn as hlwq draws them (std::mt19937 seeded with 1, id = draw % vocab),
  - prefill: one llama_decode of all P tokens (n_batch = n_ubatch = P, one batch), logits for the
    last position only; prompt tokens/s = P / time,
  - decode: N times, take the argmax of the last logits and llama_decode that one token at the next
    position; decode tokens/s = N / time (the argmax is inside the timed loop, as in hlwq),
  - a fresh (cleared) KV cache per repetition, F16 K/V (llama.cpp's default and hlwq bench's).
Repeats R times and reports the median and the best (hlwq bench reports the best of its runs),
llama.cpp's own perf counters for the last run, and the process's peak RSS (Python included; the
RSS before loading the model is printed too). The model is memory-mapped (llama.cpp's default).

usage: llama_cpp_bench.py MODEL.gguf [--threads 2] [-p 512] [-n 128] [-r 3] [--json]
"""
import argparse
import contextlib
import ctypes
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hlwq_prompt(count: int, vocab: int) -> list:
    """The ids `hlwq bench` uses: std::mt19937 generator(1); generator() % vocab."""
    generator = np.random.RandomState(1)._bit_generator  # MT19937 seeded like std::mt19937(1)
    draws = generator.random_raw(count)
    assert count == 0 or int(draws[0]) == 1791095845, "MT19937 seeding differs from std::mt19937(1)"
    return [int(d % vocab) for d in draws]


@contextlib.contextmanager
def llama_log_captured():
    """llama.cpp logs to stderr; keep it in a temporary file, shown only if something fails."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class Batch:
    """A llama_batch for one sequence whose only requested logits are the last token's."""

    def __init__(self, llama_cpp, capacity: int):
        self.llama_cpp = llama_cpp
        self.batch = llama_cpp.llama_batch_init(capacity, 0, 1)

    def fill(self, tokens, first_position: int):
        batch = self.batch
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = first_position + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if i == len(tokens) - 1 else 0
        return batch

    def free(self):
        self.llama_cpp.llama_batch_free(self.batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-p", type=int, default=512, dest="prompt_tokens")
    parser.add_argument("-n", type=int, default=128, dest="generated_tokens")
    parser.add_argument("-r", "--repetitions", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if args.prompt_tokens < 1 or args.generated_tokens < 1:
        raise SystemExit("-p and -n must be at least 1")

    import llama_cpp

    rss_before_model = current_rss_mb()
    with llama_log_captured():
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        model = llama_cpp.llama_model_load_from_file(args.model.encode(), model_params)
        if not model:
            raise SystemExit(f"llama.cpp cannot load {args.model}")
        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = args.prompt_tokens + args.generated_tokens
        context_params.n_batch = args.prompt_tokens  # the whole prompt in one llama_decode
        context_params.n_ubatch = args.prompt_tokens
        context_params.n_threads = args.threads
        context_params.n_threads_batch = args.threads
        context_params.no_perf = False  # keep llama.cpp's own timers for the cross-check below
        context = llama_cpp.llama_init_from_model(model, context_params)
        if not context:
            raise SystemExit(f"llama.cpp cannot create a context for {args.model}")
    vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    prompt = hlwq_prompt(args.prompt_tokens, vocab)
    memory = llama_cpp.llama_get_memory(context)
    batch = Batch(llama_cpp, args.prompt_tokens)

    def decode(tokens, position):
        status = llama_cpp.llama_decode(context, batch.fill(tokens, position))
        if status != 0:
            raise SystemExit(f"llama_decode failed with status {status}")
        logits = llama_cpp.llama_get_logits_ith(context, -1)
        return np.ctypeslib.as_array(ctypes.cast(logits, ctypes.POINTER(ctypes.c_float)), shape=(vocab,))

    prefill_rates, decode_rates = [], []
    for _ in range(max(1, args.repetitions)):
        llama_cpp.llama_memory_clear(memory, True)
        llama_cpp.llama_perf_context_reset(context)
        start = time.perf_counter()
        logits = decode(prompt, 0)
        prefill_seconds = time.perf_counter() - start
        start = time.perf_counter()
        token = int(np.argmax(logits))
        for i in range(args.generated_tokens):
            logits = decode([token], args.prompt_tokens + i)
            token = int(np.argmax(logits))
        decode_seconds = time.perf_counter() - start
        prefill_rates.append(args.prompt_tokens / prefill_seconds)
        decode_rates.append(args.generated_tokens / decode_seconds)
    perf = llama_cpp.llama_perf_context(context)
    flash_attention = context_params.flash_attn_type
    batch.free()
    with llama_log_captured():
        llama_cpp.llama_free(context)
        llama_cpp.llama_model_free(model)

    report = {
        "model": args.model, "engine": "llama.cpp (llama-cpp-python " + llama_cpp.__version__ + ")",
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "threads": args.threads, "prompt_tokens": args.prompt_tokens, "generated_tokens": args.generated_tokens,
        "repetitions": len(prefill_rates), "flash_attn_type_param": flash_attention,
        "prefill_tokens_per_second": statistics.median(prefill_rates),
        "decode_tokens_per_second": statistics.median(decode_rates),
        "prefill_tokens_per_second_best": max(prefill_rates),
        "decode_tokens_per_second_best": max(decode_rates),
        "prefill_runs": prefill_rates, "decode_runs": decode_rates,
        # llama.cpp's internal timers, last repetition only (no Python between the calls).
        "llama_perf_prefill_tokens_per_second": perf.n_p_eval / (perf.t_p_eval_ms / 1e3) if perf.t_p_eval_ms else None,
        "llama_perf_decode_tokens_per_second": perf.n_eval / (perf.t_eval_ms / 1e3) if perf.t_eval_ms else None,
        "peak_rss_mb": peak_rss_mb(), "rss_before_model_mb": rss_before_model,
        "model_file_mb": os.path.getsize(args.model) / 1e6,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['engine']}, {args.threads} threads, -p {args.prompt_tokens} -n {args.generated_tokens}, "
          f"{report['repetitions']} runs: {report['system_info']}")
    print(f"{'model':<48} {'prefill tok/s':>14} {'(best)':>8} {'decode tok/s':>13} {'(best)':>8} {'peak RSS MB':>12}")
    print(f"{os.path.basename(args.model):<48} {report['prefill_tokens_per_second']:14.1f} "
          f"{report['prefill_tokens_per_second_best']:8.1f} {report['decode_tokens_per_second']:13.2f} "
          f"{report['decode_tokens_per_second_best']:8.2f} {report['peak_rss_mb']:12.0f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
