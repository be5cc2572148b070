#!/usr/bin/env python3
"""Quantizes a reference GGUF (F32 or F16, e.g. from make_reference_gguf.py) with llama.cpp itself
(llama-cpp-python's llama_model_quantize with llama_model_quantize_default_params(): no importance
matrix, llama.cpp's own per-tensor type choices and fallbacks), and measures the result: file size,
bits per weight over the whole file (file bytes * 8 / parameter count) and over the tensor data
only, how many tensors got each type, and how many llama.cpp had to give a fallback type (k-quants
need rows whose length is a multiple of 256; SmolLM2-135M's 576-wide rows are not, so most of
Q4_K_M becomes Q5_0/Q8_0 there).

usage: llama_cpp_quantize.py REF.gguf OUT_DIR [--types Q4_0,Q4_K_M,IQ4_NL,Q8_0] [--threads 2] [--json]
Writes OUT_DIR/<model>.<TYPE>.gguf (through .partial, renamed when llama.cpp reports success) and
llama.cpp's log next to it as <model>.<TYPE>.log. <model> is REF's name without ".gguf" and
without a trailing ".F32"/".F16"/".BF16". Exit status 2 when llama.cpp refused a type (the reason,
e.g. "this quantization requires an imatrix!", is printed).
"""
import argparse
import json
import os
import sys
from collections import Counter

import llama_cpp
from gguf import GGUFReader


def model_stem(path: str) -> str:
    stem = os.path.basename(path)
    if stem.endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    for suffix in (".F32", ".F16", ".BF16"):
        if stem.upper().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def ftype_of(name: str) -> int:
    constant = "LLAMA_FTYPE_MOSTLY_" + name.upper()
    if not hasattr(llama_cpp, constant):
        raise SystemExit(f"unknown llama.cpp type {name!r} (no llama_cpp.{constant})")
    return getattr(llama_cpp, constant)


def quantize(reference: str, output: str, ftype: int, threads: int, log_path: str) -> int:
    """Runs llama_model_quantize with llama.cpp's stderr going to log_path; returns its status."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    saved_stderr = os.dup(2)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            return llama_cpp.llama_model_quantize(reference.encode(), output.encode(), params)
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def measure(path: str) -> dict:
    reader = GGUFReader(path)
    parameters = sum(int(t.n_elements) for t in reader.tensors)
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    file_bytes = os.path.getsize(path)
    return {"file": path, "file_bytes": file_bytes, "tensor_bytes": tensor_bytes, "parameters": parameters,
            "bits_per_weight_file": file_bytes * 8 / parameters,
            "bits_per_weight_tensors": tensor_bytes * 8 / parameters,
            "tensor_types": dict(Counter(t.tensor_type.name for t in reader.tensors).most_common())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference")
    parser.add_argument("out_dir")
    parser.add_argument("--types", default="Q4_0,Q4_K_M,IQ4_NL,Q8_0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    llama_cpp.llama_backend_init()

    names = [t.strip().upper() for t in args.types.split(",") if t.strip()]
    ftypes = {name: ftype_of(name) for name in names}  # unknown names fail before any work
    results = [dict(measure(args.reference), type="reference")]
    for name in names:
        output = os.path.join(args.out_dir, f"{model_stem(args.reference)}.{name.upper()}.gguf")
        log_path = output[: -len(".gguf")] + ".log"
        partial = output + ".partial"
        status = quantize(args.reference, partial, ftypes[name], args.threads, log_path)
        if status != 0 or not os.path.exists(partial):
            if os.path.exists(partial):
                os.remove(partial)
            with open(log_path, errors="replace") as log:
                lines = [line.strip() for line in log if line.strip()]
            reason = lines[-1] if lines else "no log"
            print(f"llama.cpp refused {name} (status {status}): {reason}; its log: {log_path}", file=sys.stderr)
            results.append({"type": name, "refused": True, "status": status, "reason": reason, "log": log_path})
            continue
        os.replace(partial, output)
        with open(log_path, errors="replace") as log:
            fallbacks = sum("falling back" in line for line in log)
        results.append(dict(measure(output), type=name, log=log_path, fallback_tensors=fallbacks))

    exit_code = 2 if any(r.get("refused") for r in results) else 0  # 2: llama.cpp refused a type
    if args.json:
        print(json.dumps(results, indent=1))
        return exit_code
    print(f"{'type':<10} {'MB':>8} {'params':>12} {'bpw file':>9} {'bpw tensors':>12} {'fallbacks':>9}  tensor types")
    for r in results:
        if r.get("refused"):
            print(f"{r['type']:<10} refused by llama.cpp (status {r['status']}): {r['reason']}")
            continue
        types = ", ".join(f"{k} x{v}" for k, v in r["tensor_types"].items())
        print(f"{r['type']:<10} {r['file_bytes'] / 1e6:8.2f} {r['parameters']:12d} "
              f"{r['bits_per_weight_file']:9.3f} {r['bits_per_weight_tensors']:12.3f} "
              f"{r.get('fallback_tensors', 0):9d}  {types}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
