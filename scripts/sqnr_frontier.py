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
    its K-quants and IQ4_NL are not implemented there).

For each setting it reports the pooled SQNR (10 log10 of the sum of squared weights over the sum of
squared errors, over all those tensors), the median of the per-tensor SQNRs and the bits per weight
counted from the stored bytes: every tensor a weight is stored in (codes plus per-block gains /
scales / mins / biases), summed over the same tensors and divided by their weight count. Writes
OUT/sqnr_frontier.json, OUT/sqnr_frontier.csv and OUT/sqnr_frontier.png (SQNR against bits per
weight, each method's frontier drawn, and the Gaussian rate-distortion bound 6.02 dB per bit).

  scripts/sqnr_frontier.py [--model DIR] [--hlwq build/hlwq] [--out out/sqnr_frontier]
                           [--methods hlwq,mlx,gguf] [--threads N]

Resumable: each setting's result is kept in OUT/results/<name>.json and reused on a rerun
(delete it to measure again). Quantized folders are made under OUT/work and deleted after use.
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
              "tensors": len(linear), "weights": weights}
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
    colors = {"HLWQ": "tab:red", "MLX affine": "tab:blue", "llama.cpp (gguf-py)": "tab:green"}
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
            if method == "llama.cpp (gguf-py)":
                axes.annotate(row["setting"]["type"], (row["bits_per_weight"], row["sqnr_db"]), fontsize=7,
                              xytext=(4, -10), textcoords="offset points", color=color)
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

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="dense F32 model folder (default: fetch EmbeddingGemma-300M)")
    parser.add_argument("--hlwq", default=str(ROOT / "build" / "hlwq"))
    parser.add_argument("--out", default=str(ROOT / "out" / "sqnr_frontier"))
    parser.add_argument("--methods", default="hlwq,mlx,gguf")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    methods = {m.strip() for m in args.methods.split(",") if m.strip()}
    if not methods or methods - {"hlwq", "mlx", "gguf"}:
        parser.error("--methods: hlwq, mlx and/or gguf")
    if args.model is None:
        args.model = (ROOT / subprocess.run([str(ROOT / "scripts" / "fetch_embeddinggemma.sh")], check=True,
                                            stdout=subprocess.PIPE, text=True).stdout.strip())
    args.model = Path(args.model).resolve()
    if methods & {"hlwq", "mlx"} and not Path(args.hlwq).is_file():
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
    rows = []
    # A saved result is reused only for the same reference weights and the same quantizer: the
    # hlwq binary's SHA-256 for HLWQ and MLX rows, gguf-py's version for llama.cpp's rows.
    model_identity = {"model": str(args.model.name), "tensors": len(linear),
                      "energy": round(sum(t["energy"] for t in linear.values()), 6)}
    hlwq_identity = sha256_of(args.hlwq) if methods & {"hlwq", "mlx"} else None
    for name, job in jobs:
        path = results / f"{name}.json"
        identity = dict(model_identity, quantizer=f"gguf-py {gguf_version()}" if name.startswith("gguf-")
                        else f"hlwq {hlwq_identity}")
        saved = json.loads(path.read_text()) if path.is_file() else None
        if saved and saved.get("identity") == identity:
            rows.append(saved["result"])
            continue
        result = job()
        log(f"{name}: {result['bits_per_weight']:.4f} bits, SQNR {result['sqnr_db']:.2f} dB "
            f"(median tensor {result['median_tensor_sqnr_db']:.2f}), {result['seconds']:.0f} s")
        path.with_suffix(".tmp").write_text(json.dumps({"identity": identity, "result": result}, indent=1))
        os.replace(path.with_suffix(".tmp"), path)
        rows.append(result)

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
    for row in rows:
        if row["method"] == "HLWQ":
            continue
        at = interpolate(hlwq_points, row["bits_per_weight"]) if hlwq_points else None
        same_bits = [p for p in hlwq_points if abs(p["bits_per_weight"] - row["bits_per_weight"]) < 1e-9]
        comparisons.append({"peer": row["name"], "bits_per_weight": row["bits_per_weight"], "peer_sqnr_db": row["sqnr_db"],
                            "hlwq_frontier_sqnr_db": at,
                            "hlwq_same_bits": [{"name": p["name"], "sqnr_db": p["sqnr_db"]} for p in same_bits]})
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
            "bits_per_weight": "8 * bytes of every stored tensor of those weights (codes, gains, scales, mins, "
                               "biases) / their weight count; codebooks, Hadamard matrices and format constants "
                               "are implied by the format and cost nothing",
            "gaussian_bound_gap_db": "6.02 dB * bits - SQNR (rate-distortion bound of an i.i.d. Gaussian source)",
            "inspect_sqnr_db": "hlwq inspect's own summary over all the tensors it quantized (relative MSE averaged "
                               "by weight count; for MLX it includes the embedding), kept for reference only"},
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "hlwq_commit": commit, "gguf_py": gguf_version(),
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
