#!/usr/bin/env python3
"""Weight SQNR per bit of every linear weight: HLWQ against llama.cpp's formats and MLX affine.

On a dense F32 model folder (default: EmbeddingGemma-300M from scripts/fetch_embeddinggemma.sh, a
model whose weights were never quantized before), quantizes every 2-D weight of the layers
(`layers.N.*.weight`: q/k/v/o and gate/up/down projections; not the embedding, not the norms) with

  - HLWQ: `hlwq quantize --bits B --block K` (B = 2..8, K = 32, 64, 128), read back through
    `hlwq inspect --ref` (relative MSE per tensor);
  - MLX affine: `hlwq export --to mlx --bits B --group-size G --dtype f16` (B = 2, 3, 4, 6, 8;
    G = 32, 64, 128; scales and biases stored as float16), read back the same way;
  - llama.cpp's formats through gguf-py's numpy reference quantizers (`gguf.quants.quantize` /
    `dequantize`): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and MXFP4 (the types that gguf-py quantizes itself;
    its K-quants and IQ4_NL are not implemented there);
  - llama.cpp's own quantizer (method `llamacpp`): the model converted to an F32 GGUF by llama.cpp's
    convert_hf_to_gguf.py, quantized by libllama's `llama_model_quantize` (llama-cpp-python's
    bindings, scripts/llama_cpp_quantize.py; default parameters: no imatrix, llama.cpp's own
    per-tensor type mix and fallbacks) to Q2_K, Q3_K_M, Q4_K_S, Q4_K_M, Q5_K_M, Q6_K, IQ4_XS, IQ4_NL
    and Q4_0, and read back with gguf-py (`GGUFReader`, `gguf.quants.dequantize`). Each row counts
    the stored bytes of the linear weights' tensors whatever type each got, and lists those types.
    Its Q4_0 row puts every linear weight in Q4_0 and must equal gguf-py's Q4_0 row: a check of the
    conversion, the tensor mapping and the read-back.
  - HLWQ with mixed widths (method `hlwq-target`): `hlwq quantize --target-bpw X` (each tensor its
    own code width 2..8, --block auto), at X = the bits per weight of each llama.cpp row of the same
    run (or --targets X,Y,...), so that each of those rows has an HLWQ row with no more bits.

For each setting it reports the pooled SQNR (10 log10 of the sum of squared weights over the sum of
squared errors, over all those tensors), the median of the per-tensor SQNRs and the bits per weight
counted from the stored bytes: every tensor a weight is stored in (codes plus per-block gains /
scales / mins / biases), summed over the same tensors and divided by their weight count. Writes
OUT/sqnr_frontier.json, OUT/sqnr_frontier.csv and OUT/sqnr_frontier.png (SQNR against bits per
weight, each method's frontier drawn, and the Gaussian rate-distortion bound 6.02 dB per bit).

  scripts/sqnr_frontier.py [--model DIR] [--hlwq build/hlwq] [--out out/sqnr_frontier]
                           [--methods hlwq,mlx,gguf[,llamacpp][,hlwq-target]] [--threads N]
                           [--targets BITS,...]
                           [--llama-cpp-python SDIST --llama-cpp-lib LIBDIR]

The `llamacpp` method needs llama-cpp-python's source distribution, unpacked (SDIST: its Python
bindings, and llama.cpp's source in SDIST/vendor/llama.cpp with convert_hf_to_gguf.py, which needs
torch, sentencepiece and transformers), and libllama.so built from that same source (LIBDIR, or the
environment variable LLAMA_CPP_LIB_PATH; the folder also holds libggml*.so):

  python3 -m pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
  tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
  cmake -S /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp -B /tmp/lcp/build -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF
  cmake --build /tmp/lcp/build --target llama -j 2        # -> /tmp/lcp/build/bin/libllama.so
  scripts/sqnr_frontier.py --methods hlwq,mlx,gguf,llamacpp \
    --llama-cpp-python /tmp/lcp/llama_cpp_python-0.3.36 --llama-cpp-lib /tmp/lcp/build/bin

Resumable: each setting's result is kept in OUT/results/<name>.json and reused on a rerun
(delete it to measure again). Quantized folders and GGUFs are made under OUT/work and deleted after
use (the F32 GGUF stays there until the run ends, and is reused by a rerun after an interruption).
"""
import argparse
import csv
import datetime
import hashlib
import json
import math
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LINEAR = re.compile(r"^(?:model\.)?layers\.\d+\.(?:self_attn|mlp)\.[a-z_]+_proj\.weight$")
HLWQ_BITS = (2, 3, 4, 5, 6, 7, 8)
HLWQ_BLOCKS = (32, 64, 128)
MLX_BITS = (2, 3, 4, 6, 8)
MLX_GROUPS = (32, 64, 128)
GGUF_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4")
# llama.cpp's file types (LLAMA_FTYPE_MOSTLY_*) quantized by libllama itself. Q4_0 is the check row.
LLAMACPP_TYPES = ("Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS", "IQ4_NL", "Q4_0")
# A layer's linear weight in Hugging Face's names -> llama.cpp's (blk.N.<this>.weight).
GGUF_LINEAR_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                     "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                     "mlp.down_proj": "ffn_down"}


def log(message):
    print(f"[sqnr_frontier] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# safetensors, read with numpy only

def safetensors_header(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return 8 + length, header


def folder_tensors(folder):
    """name -> (file, data start, info) over every safetensors file of the folder."""
    tensors = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        start, header = safetensors_header(path)
        for name, info in header.items():
            tensors[name] = (path, start, info)
    if not tensors:
        raise SystemExit(f"sqnr_frontier: no safetensors in {folder}")
    return tensors


def read_f32(entry):
    path, start, info = entry
    if info["dtype"] != "F32":
        raise SystemExit(f"sqnr_frontier: the reference must be F32, {path} has {info['dtype']}")
    begin, end = info["data_offsets"]
    data = np.memmap(path, dtype="<f4", mode="r", offset=start + begin, shape=((end - begin) // 4,))
    return np.asarray(data).reshape(info["shape"])


def stored_bits(folder, names):
    """name -> bits stored for that weight: the bytes of every tensor named after it (X.weight, or
    X.<anything> for X.weight's prefix X: codes, gains, scales, biases), times 8."""
    tensors = folder_tensors(folder)
    bits = {}
    for name in names:
        prefix = name[: -len(".weight")]
        parts = [n for n in tensors if n == name or n.startswith(prefix + ".")]
        if not parts:
            raise SystemExit(f"sqnr_frontier: {folder} stores nothing for {name}")
        bits[name] = 8 * sum(tensors[n][2]["data_offsets"][1] - tensors[n][2]["data_offsets"][0] for n in parts)
    return bits


# ---------------------------------------------------------------------------------------------
# Measurements

def summarize(name, method, setting, linear, errors, bits, extra=None):
    """errors: name -> sum of squared errors; bits: name -> stored bits."""
    signal = sum(linear[n]["energy"] for n in linear)
    noise = sum(errors[n] for n in linear)
    weights = sum(linear[n]["count"] for n in linear)
    per_tensor = [10 * math.log10(linear[n]["energy"] / errors[n]) if errors[n] > 0 else math.inf for n in linear]
    result = {"name": name, "method": method, "setting": setting,
              "bits_per_weight": sum(bits[n] for n in linear) / weights,
              "sqnr_db": 10 * math.log10(signal / noise) if noise > 0 else math.inf,
              "median_tensor_sqnr_db": float(np.median(per_tensor)),
              "min_tensor_sqnr_db": float(np.min(per_tensor)),
              "max_tensor_sqnr_db": float(np.max(per_tensor)),
              "tensors": len(linear), "weights": weights,
              "tensor_sqnr_db": {n: round(v, 4) for n, v in zip(linear, per_tensor)}}
    if extra:
        result.update(extra)
    return result


def run(command):
    done = subprocess.run([str(c) for c in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sqnr_frontier: {' '.join(map(str, command))} failed:\n{done.stderr.strip()}")
    return done.stdout


def inspect_errors(args, folder, linear):
    """Per-tensor squared error from `hlwq inspect --ref`: rel_mse (error energy over weight energy)
    times the weight energy computed here."""
    report = json.loads(run([args.hlwq, "inspect", "-m", folder, "--ref", args.model, "--json",
                             "--threads", args.threads]))
    by_name = {t["name"]: t for t in report["tensors"]}
    errors = {}
    for name in linear:
        entry = by_name.get(name)
        if entry is None or not entry.get("quantized"):
            raise SystemExit(f"sqnr_frontier: {folder}: {name} is not quantized there")
        errors[name] = entry["rel_mse"] * linear[name]["energy"]
    return errors, {"inspect_sqnr_db": report.get("sqnr_db"), "inspect_bits_per_weight": report.get("bits_per_weight")}


def measure_hlwq(args, linear, bits_, block):
    folder = args.work / f"hlwq-q{bits_}-b{block}"
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    run([args.hlwq, "quantize", "-m", args.model, "-o", folder, "--bits", bits_, "--block", block,
         "--threads", args.threads, "--json"])
    errors, extra = inspect_errors(args, folder, linear)
    bits = stored_bits(folder, linear)
    shutil.rmtree(folder)
    extra.update(seconds=time.perf_counter() - start,
                 command=f"hlwq quantize --bits {bits_} --block {block} (defaults otherwise: --gain lsq)")
    return summarize(f"hlwq-q{bits_}-b{block}", "HLWQ", {"bits": bits_, "block": block}, linear, errors, bits, extra)


def measure_hlwq_target(args, linear, target):
    """HLWQ with mixed code widths: `hlwq quantize --target-bpw TARGET` (each tensor its own width 2..8
    for that average of codes and gains; --block auto), read back like the uniform rows."""
    name = f"hlwq-t{target:.4f}"
    folder = args.work / name
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    command = [str(c) for c in (args.hlwq, "quantize", "-m", args.model, "-o", folder, "--target-bpw",
                                repr(float(target)), "--threads", args.threads, "--json")]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0 and "outside what these tensors can store" in done.stderr:
        log(f"{name}: skipped, {done.stderr.strip().removeprefix('hlwq: error: ')}")  # e.g. above 8-bit codes
        return None
    if done.returncode != 0:
        raise SystemExit(f"sqnr_frontier: {' '.join(command)} failed:\n{done.stderr.strip()}")
    errors, extra = inspect_errors(args, folder, linear)
    bits = stored_bits(folder, linear)
    entries = json.loads((folder / "config.json").read_text())["quantization_config"]["quantized_tensors"]
    widths = {}
    for tensor in linear:
        width = entries[tensor]["bits"]
        widths[width] = widths.get(width, 0) + 1
    shutil.rmtree(folder)
    extra.update(seconds=time.perf_counter() - start, widths=dict(sorted(widths.items())),
                 command=f"hlwq quantize --target-bpw {float(target)!r} (defaults otherwise: --block auto --gain lsq)")
    return summarize(name, "HLWQ --target-bpw", {"target_bpw": round(float(target), 4)}, linear, errors, bits, extra)


def measure_mlx(args, linear, bits_, group):
    folder = args.work / f"mlx-{bits_}bit-g{group}"
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    run([args.hlwq, "export", "-m", args.model, "-o", folder, "--to", "mlx", "--bits", bits_,
         "--group-size", group, "--dtype", "f16", "--threads", args.threads, "--json"])
    errors, extra = inspect_errors(args, folder, linear)
    bits = stored_bits(folder, linear)
    shutil.rmtree(folder)
    extra.update(seconds=time.perf_counter() - start,
                 command=f"hlwq export --to mlx --bits {bits_} --group-size {group} --dtype f16")
    return summarize(f"mlx-{bits_}bit-g{group}", "MLX affine", {"bits": bits_, "group": group}, linear, errors,
                     bits, extra)


def measure_gguf(args, linear, reference, type_name):
    from gguf import GGMLQuantizationType, quants

    qtype = GGMLQuantizationType[type_name]
    start = time.perf_counter()
    errors, bits = {}, {}
    for name in linear:
        weight = read_f32(reference[name])  # [out, in]: blocks run along the input, as in a GGUF row
        packed = quants.quantize(weight, qtype)
        restored = quants.dequantize(packed, qtype)
        if restored.shape != weight.shape:
            raise SystemExit(f"sqnr_frontier: {type_name} gave {restored.shape} for {name} {weight.shape}")
        difference = restored.astype(np.float64) - weight
        errors[name] = float(np.einsum("ij,ij->", difference, difference))
        bits[name] = 8 * packed.nbytes
    extra = {"seconds": time.perf_counter() - start,
             "command": f"gguf.quants.quantize(W, {type_name}) / dequantize (gguf-py {gguf_version()})"}
    return summarize(f"gguf-{type_name.lower()}", "llama.cpp (gguf-py)", {"type": type_name}, linear, errors,
                     bits, extra)


# ---------------------------------------------------------------------------------------------
# llama.cpp's own quantizer

def gguf_name(name):
    """layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight (llama.cpp's tensor names)."""
    match = re.match(r"^(?:model\.)?layers\.(\d+)\.((?:self_attn|mlp)\.[a-z_]+_proj)\.weight$", name)
    if not match or match[2] not in GGUF_LINEAR_NAMES:
        raise SystemExit(f"sqnr_frontier: no llama.cpp name known for {name}")
    return f"blk.{match[1]}.{GGUF_LINEAR_NAMES[match[2]]}.weight"


def gguf_tensors(path):
    from gguf import GGUFReader

    return {t.name: t for t in GGUFReader(path).tensors}


def same_rows(a, b):
    return sorted(row.tobytes() for row in a) == sorted(row.tobytes() for row in b)


def gguf_layout(f32_path, linear, reference):
    """Checks that the F32 GGUF holds each linear weight exactly as the reference does: name ->
    "identical", or "rows permuted" (llama.cpp's converter permutes the q/k rows of Llama-style
    models; every type quantizes row by row, so the error against the GGUF's own F32 rows is the
    error of the same weights). Anything else fails."""
    from gguf import GGMLQuantizationType

    tensors = gguf_tensors(f32_path)
    layout = {}
    for name in linear:
        tensor = tensors.get(gguf_name(name))
        if tensor is None or tensor.tensor_type != GGMLQuantizationType.F32:
            raise SystemExit(f"sqnr_frontier: {f32_path} has no F32 {gguf_name(name)} for {name}")
        stored, weight = np.asarray(tensor.data), read_f32(reference[name])
        if stored.shape != weight.shape:
            raise SystemExit(f"sqnr_frontier: {gguf_name(name)} is {stored.shape}, {name} {weight.shape}")
        if np.array_equal(stored, weight):
            layout[name] = "identical"
        elif same_rows(stored, weight):
            layout[name] = "rows permuted"
        else:
            raise SystemExit(f"sqnr_frontier: {f32_path}'s {gguf_name(name)} differs from {name}")
    return layout


def gguf_errors(path, linear, reference, layout, f32_path):
    """Reads the linear weights of a quantized GGUF back with gguf-py: name -> squared error against
    the reference (against the F32 GGUF's rows where the converter permuted them), name -> stored
    bits (8 x the tensor's bytes), name -> its type."""
    from gguf import quants

    tensors = gguf_tensors(path)
    f32 = gguf_tensors(f32_path) if "rows permuted" in layout.values() else None
    errors, bits, types = {}, {}, {}
    for name in linear:
        tensor = tensors.get(gguf_name(name))
        if tensor is None:
            raise SystemExit(f"sqnr_frontier: {path} has no {gguf_name(name)}")
        weight = read_f32(reference[name]) if layout[name] == "identical" else np.asarray(f32[gguf_name(name)].data)
        restored = quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
        if restored.shape != weight.shape:
            raise SystemExit(f"sqnr_frontier: {path}'s {tensor.name} reads back as {restored.shape}, "
                             f"{name} is {weight.shape}")
        difference = restored.astype(np.float64) - weight
        errors[name] = float(np.einsum("ij,ij->", difference, difference))
        bits[name] = 8 * int(tensor.n_bytes)
        types[name] = tensor.tensor_type.name
    return errors, bits, types


def mix_of(linear, types, errors):
    """The types a file put the linear weights in: type -> tensors, share of the weights and pooled
    SQNR over those tensors; and per role (attn_q, ..., ffn_down) type -> tensors."""
    weights = sum(linear[n]["count"] for n in linear)
    mix, roles = {}, {}
    for name in linear:
        entry = mix.setdefault(types[name], {"tensors": 0, "weights": 0, "energy": 0.0, "error": 0.0})
        entry["tensors"] += 1
        entry["weights"] += linear[name]["count"]
        entry["energy"] += linear[name]["energy"]
        entry["error"] += errors[name]
        role = gguf_name(name).split(".")[2]
        roles.setdefault(role, {}).setdefault(types[name], 0)
        roles[role][types[name]] += 1
    for entry in mix.values():
        entry["share"] = entry["weights"] / weights
        energy, error = entry.pop("energy"), entry.pop("error")
        entry["sqnr_db"] = 10 * math.log10(energy / error) if error > 0 else math.inf
    return dict(sorted(mix.items(), key=lambda kv: -kv[1]["weights"])), roles


def llama_cpp_setup(args):
    """Imports llama-cpp-python's bindings from --llama-cpp-python on the libllama of --llama-cpp-lib
    (or LLAMA_CPP_LIB_PATH); returns the quantizer's identity."""
    if args.llama_cpp_python is None:
        raise SystemExit("sqnr_frontier: --methods llamacpp needs --llama-cpp-python SDIST (see --help)")
    source = Path(args.llama_cpp_python).resolve()
    args.convert = source / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    if not (source / "llama_cpp" / "__init__.py").is_file() or not args.convert.is_file():
        raise SystemExit(f"sqnr_frontier: {source} is not an unpacked llama-cpp-python sdist "
                         "(no llama_cpp/ or vendor/llama.cpp/convert_hf_to_gguf.py)")
    if args.llama_cpp_lib:
        os.environ["LLAMA_CPP_LIB_PATH"] = str(Path(args.llama_cpp_lib).resolve())
    if not os.environ.get("LLAMA_CPP_LIB_PATH"):
        raise SystemExit("sqnr_frontier: --methods llamacpp needs --llama-cpp-lib LIBDIR (the folder of libllama.so)")
    sys.path.insert(0, str(source))
    import llama_cpp  # noqa: F401  (loads LIBDIR/libllama.so)
    import llama_cpp_quantize

    library = Path(llama_cpp.llama_cpp._lib._name).resolve()
    ggml_base = library.parent / "libggml-base.so"
    args.quantize = llama_cpp_quantize
    return (f"llama-cpp-python {llama_cpp.__version__}, libllama sha256 {sha256_of(library)[:16]}, "
            f"libggml-base sha256 {sha256_of(ggml_base)[:16] if ggml_base.exists() else '?'}, gguf-py {gguf_version()}")


def llama_cpp_reference(args, linear, reference):
    """The model as an F32 GGUF (convert_hf_to_gguf.py --outtype f32), checked against the
    reference; made once per run under OUT/work, reused by a rerun after an interruption."""
    if getattr(args, "f32_gguf", None):
        return args.f32_gguf, args.f32_layout
    path = args.work / f"{args.model.name}.F32.gguf"
    if not path.is_file():
        partial = path.with_suffix(".partial")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, args.convert, args.model, "--outtype", "f32", "--outfile", partial],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        (args.work / "convert_hf_to_gguf.log").write_text(done.stdout)
        if done.returncode != 0 or not partial.is_file():
            raise SystemExit(f"sqnr_frontier: {args.convert} failed:\n" + "\n".join(done.stdout.splitlines()[-20:]))
        os.replace(partial, path)
        log(f"{path.name}: converted in {time.perf_counter() - start:.0f} s")
    args.f32_gguf, args.f32_layout = path, gguf_layout(path, linear, reference)
    counts = {k: list(args.f32_layout.values()).count(k) for k in sorted(set(args.f32_layout.values()))}
    log(f"{path.name}: the {len(linear)} linear weights are stored as in the reference ({counts})")
    return args.f32_gguf, args.f32_layout


def measure_llamacpp(args, linear, reference, type_name):
    f32, layout = llama_cpp_reference(args, linear, reference)
    output = args.work / f"{args.model.name}.{type_name}.gguf"
    log_path = output.with_suffix(".log")
    start = time.perf_counter()
    ftype = args.quantize.ftype_of(type_name)
    status = args.quantize.quantize(str(f32), str(output), ftype, args.threads, str(log_path))
    quantize_seconds = time.perf_counter() - start
    if status != 0 or not output.is_file():
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        raise SystemExit(f"sqnr_frontier: llama_model_quantize {type_name} failed ({status}): "
                         f"{lines[-1] if lines else 'no log'}; its log: {log_path}")
    errors, bits, types = gguf_errors(output, linear, reference, layout, f32)
    mix, roles = mix_of(linear, types, errors)
    # llama.cpp's log: "warning: blk.0.ffn_down.weight - ncols 1152 not divisible by 256 (required
    # for type q6_K) -> falling back to q8_0": wanted type -> given type, over the linear weights.
    linear_names = {gguf_name(n) for n in linear}
    fallbacks = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"(blk\.\d+\.\S+)\s.*required for type\s+(\S+)\).*falling back to\s+(\S+)", line)
        if match and match[1] in linear_names:
            key = f"{match[2].upper()} -> {match[3].upper()}"
            fallbacks[key] = fallbacks.get(key, 0) + 1
    file_bits = 8 * output.stat().st_size / sum(int(t.n_elements) for t in gguf_tensors(output).values())
    output.unlink()
    log_path.unlink()
    extra = {"seconds": time.perf_counter() - start, "quantize_seconds": quantize_seconds,
             "command": f"llama_model_quantize(F32 GGUF, LLAMA_FTYPE_MOSTLY_{type_name}, default params: no imatrix)",
             "types": mix, "types_by_role": roles, "fallback_tensors": fallbacks,
             "file_bits_per_weight": file_bits, "gguf_layout": sorted(set(layout.values()))}
    return summarize(f"llamacpp-{type_name.lower()}", "llama.cpp (libllama)", {"type": type_name}, linear, errors,
                     bits, extra)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def gguf_version():
    try:
        from importlib.metadata import version

        return version("gguf")
    except Exception:
        return "?"


# ---------------------------------------------------------------------------------------------
# Frontier, table, plot

def frontier(points):
    """The points no other point beats: none with fewer-or-equal bits and a higher SQNR."""
    best = []
    for point in sorted(points, key=lambda p: (p["bits_per_weight"], -p["sqnr_db"])):
        if not best or point["sqnr_db"] > best[-1]["sqnr_db"]:
            best.append(point)
    return best


def write_csv(path, rows):
    fields = ["name", "method", "setting", "bits_per_weight", "sqnr_db", "median_tensor_sqnr_db",
              "min_tensor_sqnr_db", "max_tensor_sqnr_db", "on_frontier"]
    with open(path.with_suffix(".tmp"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([row["name"], row["method"], " ".join(f"{k}={v}" for k, v in row["setting"].items())]
                            + [f"{row[k]:.4f}" for k in fields[3:8]] + [int(row["on_frontier"])])
    os.replace(path.with_suffix(".tmp"), path)


def plot(path, rows, model_name):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plot (pip install matplotlib)")
        return False
    colors = {"HLWQ": "tab:red", "HLWQ --target-bpw": "tab:orange", "MLX affine": "tab:blue", "llama.cpp (gguf-py)": "tab:green",
              "llama.cpp (libllama)": "tab:purple"}
    markers = {32: "o", 64: "s", 128: "^"}
    figure, axes = plt.subplots(figsize=(9, 6), dpi=120)
    top = max(r["bits_per_weight"] for r in rows) + 0.5
    xs = np.linspace(1.5, top, 50)
    axes.plot(xs, 6.0206 * xs, color="grey", linestyle=":", label="Gaussian rate-distortion bound (6.02 dB/bit)")
    for method, color in colors.items():
        points = [r for r in rows if r["method"] == method]
        if not points:
            continue
        for row in points:
            size = row["setting"].get("block") or row["setting"].get("group")
            axes.scatter(row["bits_per_weight"], row["sqnr_db"], color=color, marker=markers.get(size, "D"),
                         s=28, zorder=3)
            if method == "llama.cpp (gguf-py)":  # labels below the points; libllama's above (its Q4_0 is gguf-py's)
                axes.annotate(row["setting"]["type"], (row["bits_per_weight"], row["sqnr_db"]), fontsize=7,
                              xytext=(4, -10), textcoords="offset points", color=color)
            elif method.startswith("llama.cpp") and row["setting"]["type"] != "Q4_0":
                axes.annotate(row["setting"]["type"], (row["bits_per_weight"], row["sqnr_db"]), fontsize=7,
                              xytext=(-8, 7), textcoords="offset points", color=color)
        best = frontier(points)
        axes.plot([p["bits_per_weight"] for p in best], [p["sqnr_db"] for p in best], color=color, label=method)
    for size, marker in markers.items():
        axes.scatter([], [], color="black", marker=marker, s=28, label=f"block / group {size}")
    axes.set_xlabel("bits per linear weight (codes + per-block gains / scales / mins)")
    axes.set_ylabel("weight SQNR, dB (pooled over the linear weights)")
    axes.set_title(f"{model_name}: weight SQNR against bits per weight")
    axes.grid(True, alpha=0.3)
    axes.set_xlim(1.5, top)
    axes.set_ylim(0, max(r["sqnr_db"] for r in rows) + 5)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path.with_suffix(".tmp.png"))
    os.replace(path.with_suffix(".tmp.png"), path)
    return True


def interpolate(points, bits):
    """SQNR of a method's frontier at `bits` (linear between frontier points; None outside)."""
    best = frontier(points)
    for a, b in zip(best, best[1:]):
        if a["bits_per_weight"] <= bits <= b["bits_per_weight"]:
            t = (bits - a["bits_per_weight"]) / (b["bits_per_weight"] - a["bits_per_weight"])
            return a["sqnr_db"] + t * (b["sqnr_db"] - a["sqnr_db"])
    return None


# ---------------------------------------------------------------------------------------------

def run_jobs(jobs, results, model_identity, hlwq_identity, llama_identity):
    """Runs each (name, job) or reuses its saved result (same reference, same quantizer)."""
    rows = []
    for name, job in jobs:
        path = results / f"{name}.json"
        identity = dict(model_identity, quantizer=f"gguf-py {gguf_version()}" if name.startswith("gguf-")
                        else llama_identity if name.startswith("llamacpp-") else f"hlwq {hlwq_identity}")
        saved = json.loads(path.read_text()) if path.is_file() else None
        if saved and saved.get("identity") == identity:
            rows.append(saved["result"])
            continue
        result = job()
        if result is None:  # a setting the quantizer refuses (hlwq-target beyond 2..8-bit codes)
            continue
        log(f"{name}: {result['bits_per_weight']:.4f} bits, SQNR {result['sqnr_db']:.2f} dB "
            f"(median tensor {result['median_tensor_sqnr_db']:.2f}), {result['seconds']:.0f} s")
        path.with_suffix(".tmp").write_text(json.dumps({"identity": identity, "result": result}, indent=1))
        os.replace(path.with_suffix(".tmp"), path)
        rows.append(result)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="dense F32 model folder (default: fetch EmbeddingGemma-300M)")
    parser.add_argument("--hlwq", default=str(ROOT / "build" / "hlwq"))
    parser.add_argument("--out", default=str(ROOT / "out" / "sqnr_frontier"))
    parser.add_argument("--methods", default="hlwq,mlx,gguf")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--targets", metavar="BITS,...",
                        help="hlwq-target: the --target-bpw values (default: the bits per weight of this run's "
                             "llama.cpp rows, so that each has an HLWQ row with no more bits)")
    parser.add_argument("--llama-cpp-python", metavar="SDIST",
                        help="llamacpp: unpacked llama-cpp-python sdist (bindings + vendor/llama.cpp's converter)")
    parser.add_argument("--llama-cpp-lib", metavar="LIBDIR",
                        help="llamacpp: folder of libllama.so built from that sdist (default: $LLAMA_CPP_LIB_PATH)")
    args = parser.parse_args()
    methods = {m.strip() for m in args.methods.split(",") if m.strip()}
    if not methods or methods - {"hlwq", "hlwq-target", "mlx", "gguf", "llamacpp"}:
        parser.error("--methods: hlwq, hlwq-target, mlx, gguf and/or llamacpp")
    if "hlwq-target" in methods and not args.targets and not methods & {"gguf", "llamacpp"}:
        parser.error("--methods hlwq-target needs --targets, or gguf / llamacpp rows whose bits it takes")
    if args.model is None:
        args.model = (ROOT / subprocess.run([str(ROOT / "scripts" / "fetch_embeddinggemma.sh")], check=True,
                                            stdout=subprocess.PIPE, text=True).stdout.strip())
    args.model = Path(args.model).resolve()
    if methods & {"hlwq", "hlwq-target", "mlx"} and not Path(args.hlwq).is_file():
        raise SystemExit(f"sqnr_frontier: no hlwq binary at {args.hlwq} (scripts/build.sh)")
    out = Path(args.out).resolve()
    args.work = out / "work"
    results = out / "results"
    for folder in (out, args.work, results):
        folder.mkdir(parents=True, exist_ok=True)

    reference = folder_tensors(args.model)
    linear = {}
    for name in sorted(reference, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]):
        if LINEAR.match(name) and len(reference[name][2]["shape"]) == 2:
            weight = read_f32(reference[name]).astype(np.float64)
            linear[name] = {"shape": list(weight.shape), "count": weight.size,
                            "energy": float(np.einsum("ij,ij->", weight, weight))}
    if not linear:
        raise SystemExit(f"sqnr_frontier: no layers.N.*_proj.weight tensors in {args.model}")
    total = sum(math.prod(r[2]["shape"]) for r in reference.values())
    log(f"{args.model.name}: {len(reference)} tensors, {total} weights; {len(linear)} linear weights, "
        f"{sum(t['count'] for t in linear.values())} weights")

    jobs = []
    if "hlwq" in methods:
        jobs += [(f"hlwq-q{b}-b{k}", lambda b=b, k=k: measure_hlwq(args, linear, b, k))
                 for k in HLWQ_BLOCKS for b in HLWQ_BITS]
    if "gguf" in methods:
        jobs += [(f"gguf-{t.lower()}", lambda t=t: measure_gguf(args, linear, reference, t)) for t in GGUF_TYPES]
    if "mlx" in methods:
        jobs += [(f"mlx-{b}bit-g{g}", lambda b=b, g=g: measure_mlx(args, linear, b, g))
                 for g in MLX_GROUPS for b in MLX_BITS]
    if "llamacpp" in methods:
        jobs += [(f"llamacpp-{t.lower()}", lambda t=t: measure_llamacpp(args, linear, reference, t))
                 for t in LLAMACPP_TYPES]
    # A saved result is reused only for the same reference weights and the same quantizer: the
    # hlwq binary's SHA-256 for HLWQ and MLX rows, gguf-py's version for gguf-py's rows, and
    # llama-cpp-python's version, libllama's and libggml-base's SHA-256 and gguf-py's version for
    # libllama's rows.
    model_identity = {"model": str(args.model.name), "tensors": len(linear),
                      "energy": round(sum(t["energy"] for t in linear.values()), 6)}
    hlwq_identity = sha256_of(args.hlwq) if methods & {"hlwq", "hlwq-target", "mlx"} else None
    llama_identity = llama_cpp_setup(args) if "llamacpp" in methods else None
    rows = run_jobs(jobs, results, model_identity, hlwq_identity, llama_identity)
    if "hlwq-target" in methods:
        # After the other rows: by default the targets are the llama.cpp rows' bits per weight.
        targets = ([float(t) for t in args.targets.split(",") if t.strip()] if args.targets else
                   sorted({r["bits_per_weight"] for r in rows if r["method"].startswith("llama.cpp")}))
        rows += run_jobs([(f"hlwq-t{t:.4f}", lambda t=t: measure_hlwq_target(args, linear, t)) for t in targets],
                         results, model_identity, hlwq_identity, llama_identity)

    by_method = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    for method, points in by_method.items():
        on = {id(p) for p in frontier(points)}
        for point in points:
            point["on_frontier"] = id(point) in on
            point["gaussian_bound_gap_db"] = 6.0206 * point["bits_per_weight"] - point["sqnr_db"]
    comparisons = []
    hlwq_points = by_method.get("HLWQ", [])
    target_points = by_method.get("HLWQ --target-bpw", [])
    for row in rows:
        if row["method"].startswith("HLWQ"):
            continue
        at = interpolate(hlwq_points, row["bits_per_weight"]) if hlwq_points else None
        same_bits = [p for p in hlwq_points if abs(p["bits_per_weight"] - row["bits_per_weight"]) < 1e-9]
        # the --target-bpw row aimed at this row's bits (its stored bits are at most those)
        targeted = [p for p in target_points if abs(p["setting"]["target_bpw"] - round(row["bits_per_weight"], 4)) < 1e-9]
        comparisons.append({"peer": row["name"], "bits_per_weight": row["bits_per_weight"], "peer_sqnr_db": row["sqnr_db"],
                            "hlwq_frontier_sqnr_db": at,
                            "hlwq_same_bits": [{"name": p["name"], "sqnr_db": p["sqnr_db"]} for p in same_bits],
                            "hlwq_target_bpw": [{"name": p["name"], "bits_per_weight": p["bits_per_weight"],
                                                 "sqnr_db": p["sqnr_db"], "widths": p.get("widths")} for p in targeted]})
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout.strip()
    data = {
        "model": {"folder": args.model.name, "tensors": len(reference), "weights": total,
                  "linear_tensors": len(linear), "linear_weights": sum(t["count"] for t in linear.values()),
                  "linear_shapes": sorted({tuple(t["shape"]) for t in linear.values()})},
        "definitions": {
            "sqnr_db": "10 log10(sum of squared weights / sum of squared errors), pooled over the linear tensors",
            "median_tensor_sqnr_db": "median over the linear tensors of each tensor's own SQNR",
            "tensor_sqnr_db": "each linear tensor's own SQNR, by its name in the reference",
            "bits_per_weight": "8 * bytes of every stored tensor of those weights (codes, gains, scales, mins, "
                               "biases) / their weight count; codebooks, Hadamard matrices and format constants "
                               "are implied by the format and cost nothing",
            "gaussian_bound_gap_db": "6.02 dB * bits - SQNR (rate-distortion bound of an i.i.d. Gaussian source)",
            "types": "llama.cpp (libllama) rows: the type of each linear weight in the quantized GGUF (tensors, "
                     "weights, share of the weights), also per role (types_by_role); fallback_tensors: llama.cpp's "
                     "fallbacks for rows whose length its wanted type's block does not divide",
            "inspect_sqnr_db": "hlwq inspect's own summary over all the tensors it quantized (relative MSE averaged "
                               "by weight count; for MLX it includes the embedding), kept for reference only"},
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "hlwq_commit": commit, "gguf_py": gguf_version(),
                    "llama_cpp": llama_identity,
                    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
        "rows": rows,
        "hlwq_vs_peers": comparisons,
    }
    (out / "sqnr_frontier.json.tmp").write_text(json.dumps(data, indent=1))
    os.replace(out / "sqnr_frontier.json.tmp", out / "sqnr_frontier.json")
    write_csv(out / "sqnr_frontier.csv", rows)
    plotted = plot(out / "sqnr_frontier.png", rows, args.model.name)
    shutil.rmtree(args.work, ignore_errors=True)
    log(f"wrote {out / 'sqnr_frontier.json'}, sqnr_frontier.csv" + (" and sqnr_frontier.png" if plotted else ""))
    for row in sorted(rows, key=lambda r: r["bits_per_weight"]):
        print(f"{row['name']:<18} {row['bits_per_weight']:7.4f} bpw  {row['sqnr_db']:7.2f} dB  "
              f"median {row['median_tensor_sqnr_db']:7.2f}{'  *' if row['on_frontier'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
