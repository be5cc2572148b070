#!/usr/bin/env python3
"""Throughput of `hlwq serve` on the demo model: total generated tokens/s and time to first token
(p50, p99) at several numbers of concurrent streams.

    python3 scripts/serve_throughput.py [--streams 1,4,16] [--requests-per-stream 2] [--max-tokens 64]
                                        [--threads N] [--ctx 512] [--model DIR] [--backend cpu|cuda]
                                        [--json]

Starts `hlwq serve --parallel MAX(streams)` on the demo model imported as F32 (or --model DIR), then
for each stream count runs that many clients at once, each sending its requests one after another:
streamed /v1/completions at temperature 0 with max_tokens tokens. Generated tokens are counted from
each answer's usage; the rate is all of them over the wall time of the round. Standard library only.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "server"))
import serve_process  # noqa: E402

PROMPTS = ["Once upon a time", "The history of the Roman Empire", "In a small village by the sea",
           "The best way to learn programming is", "Scientists have discovered", "My favourite recipe is"]


def one_request(url, prompt, max_tokens):
    """(time to first token, generated tokens) of one streamed completion."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    request = urllib.request.Request(url + "/v1/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    first, tokens = None, None
    with urllib.request.urlopen(request, timeout=600) as response:
        for line in response:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"][0]["text"]:
                first = time.perf_counter() - start
    if tokens is None:
        raise RuntimeError("no usage chunk in the answer")
    return first if first is not None else time.perf_counter() - start, tokens


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))]


def measure(url, streams, requests_per_stream, max_tokens):
    results, errors = [], []

    def client(index):
        try:
            for request in range(requests_per_stream):
                results.append(one_request(url, PROMPTS[(index + request) % len(PROMPTS)], max_tokens))
        except Exception as error:  # reported below, the round fails
            errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(index,)) for index in range(streams)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    first_token = [first for first, _ in results]
    tokens = sum(count for _, count in results)
    return {"streams": streams, "requests": len(results), "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1),
            "ttft_p50_ms": round(1000 * statistics.median(first_token), 1),
            "ttft_p99_ms": round(1000 * percentile(first_token, 0.99), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,4,16")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--model", help="model folder (default: the demo GGUF imported as F32)")
    parser.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    streams = [int(count) for count in arguments.streams.split(",")]
    with tempfile.TemporaryDirectory(prefix="hlwq-serve-throughput-") as folder:
        model = arguments.model
        if model is None:
            if not os.path.exists(serve_process.DEMO_GGUF):
                sys.exit("serve_throughput: the demo model is absent (scripts/fetch_demo_model.sh)")
            model = serve_process.import_demo_model(os.path.join(folder, "demo"))
        server = serve_process.Server(model, "--parallel", str(max(streams)), "--ctx", str(arguments.ctx),
                                      "--threads", str(arguments.threads),
                                      "--backend", arguments.backend)
        try:
            one_request(server.url, PROMPTS[0], 4)  # warm up
            rows = [measure(server.url, count, arguments.requests_per_stream, arguments.max_tokens) for count in streams]
        finally:
            status = server.stop()
    if arguments.json:
        print(json.dumps(rows, indent=2))
        return
    print("| streams | requests | generated tokens | wall s | tokens/s (all streams) | TTFT p50 ms | TTFT p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['streams']} | {row['requests']} | {row['tokens']} | {row['seconds']} | {row['tokens_per_second']} |"
              f" {row['ttft_p50_ms']} | {row['ttft_p99_ms']} |")
    if status != 0:
        sys.exit(f"serve_throughput: hlwq serve exited {status}")


if __name__ == "__main__":
    main()
