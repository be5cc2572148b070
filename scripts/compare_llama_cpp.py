#!/usr/bin/env python3
"""hlwq and llama.cpp side by side on one CPU: prefill and decode tokens/s of the demo model in
several formats, measured in interleaved rounds (hlwq, llama.cpp, hlwq, ...) so both see the same
machine load, with the median of the rounds and the ratio hlwq / llama.cpp per pair.

Pairs (same weights before quantization: the demo GGUF's dequantized F32 reference):
  reference F32 (hlwq folder)    vs  the F32 GGUF of the same weights (scripts/make_reference_gguf.py)
  HLWQ Q4 / Q5 (embeddings F32, or quantized too), MLX 4-bit g64
                                 vs  llama.cpp Q4_0, Q4_1 (the original file) and Q8_0
Workload: the one of `hlwq bench` (P random prompt ids, one prefill, N greedy decode steps), which
scripts/llama_cpp_bench.py mirrors through llama.cpp's low-level API.

usage: scripts/compare_llama_cpp.py [--threads 2] [-p 128] [-n 64] [--rounds 5] [--out out/compare]
Needs build/hlwq, the demo model (scripts/fetch_demo_model.sh) and llama-cpp-python.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, **kwargs):
    print("+ " + " ".join(command), file=sys.stderr)
    return subprocess.run(command, check=True, cwd=ROOT, **kwargs)


def output_json(command):
    result = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-p", type=int, default=128, dest="prompt")
    parser.add_argument("-n", type=int, default=64, dest="generated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="out/compare")
    args = parser.parse_args()

    out = os.path.join(ROOT, args.out)
    os.makedirs(out, exist_ok=True)
    hlwq = os.path.join(ROOT, "build/hlwq")
    gguf = subprocess.run([os.path.join(ROOT, "scripts/fetch_demo_model.sh")], check=True, capture_output=True,
                          text=True).stdout.strip()
    models = os.path.join(out, "models")
    os.makedirs(models, exist_ok=True)
    folder = lambda name: os.path.join(models, name)
    if not os.path.isdir(folder("reference")):
        run([hlwq, "import", gguf, "-o", folder("reference"), "--dtype", "f32"])
    for bits in (4, 5):
        if not os.path.isdir(folder(f"hlwq-q{bits}")):
            run([hlwq, "quantize", "-m", folder("reference"), "-o", folder(f"hlwq-q{bits}"), "--bits", str(bits)])
        # The demo ties lm_head to the embeddings, which stay F32 by default: 113 MB read per token,
        # more than all the quantized layers. llama.cpp quantizes them (Q8_0 or the file's type).
        if not os.path.isdir(folder(f"hlwq-q{bits}-embeddings")):
            run([hlwq, "quantize", "-m", folder("reference"), "-o", folder(f"hlwq-q{bits}-embeddings"), "--bits",
                 str(bits), "--quantize-embeddings"])
    if not os.path.isdir(folder("mlx4")):
        run([hlwq, "export", "-m", folder("reference"), "-o", folder("mlx4"), "--to", "mlx", "--bits", "4",
             "--group-size", "64"])
    reference_gguf = os.path.join(models, "reference.F32.gguf")
    if not os.path.exists(reference_gguf):
        run([sys.executable, "scripts/make_reference_gguf.py", gguf, reference_gguf, "--type", "f32"])
    ggufs = {"F32": reference_gguf, "Q4_1": gguf}
    for kind in ("Q4_0", "Q8_0"):
        path = os.path.join(models, f"reference.{kind}.gguf")
        if not os.path.exists(path):
            run([sys.executable, "scripts/llama_cpp_quantize.py", reference_gguf, models, "--types", kind],
                stdout=subprocess.DEVNULL)
            produced = [f for f in os.listdir(models) if f.endswith(f".{kind}.gguf")]
            os.replace(os.path.join(models, produced[0]), path)
        ggufs[kind] = path

    hlwq_models = {"reference F32": folder("reference"), "HLWQ Q4": folder("hlwq-q4"), "HLWQ Q5": folder("hlwq-q5"),
                   "HLWQ Q4 + embeddings": folder("hlwq-q4-embeddings"),
                   "HLWQ Q5 + embeddings": folder("hlwq-q5-embeddings"), "MLX 4-bit g64": folder("mlx4")}
    samples = {name: {"prefill": [], "decode": []} for name in list(hlwq_models) + [f"llama.cpp {k}" for k in ggufs]}
    common = ["--threads", str(args.threads), "-p", str(args.prompt), "-n", str(args.generated)]
    for round_index in range(args.rounds):
        print(f"round {round_index + 1}/{args.rounds}", file=sys.stderr)
        # Alternate engines inside a round so both see the same load.
        gguf_list = list(ggufs.items())
        for index, (name, model_folder) in enumerate(hlwq_models.items()):
            h = output_json([hlwq, "bench", "-m", model_folder, "--json"] + common)
            samples[name]["prefill"].append(h["prefill_tokens_per_second"])
            samples[name]["decode"].append(h["decode_tokens_per_second"])
            samples[name]["roofline"] = h["decode_roofline_fraction"]
            samples[name]["bandwidth_gb_per_second"] = h["read_bandwidth_gb_per_second"]
            if index >= len(gguf_list):
                continue
            kind, path = gguf_list[index]
            l = output_json([sys.executable, "scripts/llama_cpp_bench.py", path, "-r", "1", "--json"] + common)
            samples[f"llama.cpp {kind}"]["prefill"].append(l["prefill_tokens_per_second"])
            samples[f"llama.cpp {kind}"]["decode"].append(l["decode_tokens_per_second"])
    median = {name: {k: statistics.median(v[k]) for k in ("prefill", "decode")} for name, v in samples.items()}
    lines = [f"threads {args.threads}, prompt {args.prompt}, generated {args.generated}, median of {args.rounds} "
             f"interleaved rounds, {os.cpu_count()} cores",
             "", "| engine / format | prefill tok/s | decode tok/s |", "|---|---|---|"]
    for name, value in median.items():
        lines.append(f"| {name} | {value['prefill']:.1f} | {value['decode']:.1f} |")
    lines += ["", "| hlwq vs llama.cpp | prefill ratio | decode ratio |", "|---|---|---|"]
    for hlwq_name, llama_name in [("reference F32", "llama.cpp F32"), ("HLWQ Q4", "llama.cpp Q4_0"),
                                  ("HLWQ Q4 + embeddings", "llama.cpp Q4_0"), ("HLWQ Q5", "llama.cpp Q4_1"),
                                  ("HLWQ Q5 + embeddings", "llama.cpp Q4_1"), ("HLWQ Q5 + embeddings", "llama.cpp Q8_0"),
                                  ("MLX 4-bit g64", "llama.cpp Q4_0")]:
        a, b = median[hlwq_name], median[llama_name]
        lines.append(f"| {hlwq_name} / {llama_name} | {a['prefill'] / b['prefill']:.2f} | "
                     f"{a['decode'] / b['decode']:.2f} |")
    text = "\n".join(lines)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump({"samples": samples, "median": median, "threads": args.threads, "prompt": args.prompt,
                   "generated": args.generated, "rounds": args.rounds}, f, indent=1)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
