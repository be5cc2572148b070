#!/usr/bin/env python3
"""Turns the quality study's quality.json (written by scripts/quality) into quality.md and the PNG
plots next to it: KLD vs bits per weight (log y), perplexity vs bits per weight, and the ablation
bar chart. Runs on its own too, to redo the tables and plots without measuring anything:

  scripts/quality_report.py out/quality/quality.json

The plots need matplotlib (scripts/setup.sh installs it); without it the report says so and the
tables are still written.
"""
import importlib.util
import json
import math
import sys
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Tables.


def number(value, digits: int, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}{suffix}"


def signed(value, digits: int, suffix: str = "") -> str:
    return "–" if value is None else f"{value:+,.{digits}f}{suffix}"


def perplexity_digits(value: float) -> int:
    """Three decimals where they mean something, fewer on a collapsed model's huge perplexity."""
    return 3 if value < 100 else 1 if value < 10000 else 0


def measurement_cells(entry: dict, protocol: str, kld_stderr: bool = False) -> list:
    """PPL ± stderr, ΔPPL, mean KLD, KLD p99, top-1, weight SQNR."""
    result = entry["protocols"].get(protocol)
    kld = (result or {}).get("kl_divergence") or {}
    if result:
        digits = perplexity_digits(result["perplexity"])
        ppl = f"{result['perplexity']:,.{digits}f} ± {result['perplexity_stderr']:,.{digits}f}"
        delta = (f"{signed(result['delta_perplexity'], digits)} ({signed(result['delta_perplexity_percent'], 1)}%)"
                 if "delta_perplexity" in result else "–")
    else:
        failed = entry.get("errors", {}).get(protocol) or entry.get("errors", {}).get("model")
        ppl, delta = ("failed" if failed else "not measured"), "–"
    mean = number(kld.get("mean"), 4)
    if kld_stderr and "mean_stderr" in kld:
        mean += f" ± {kld['mean_stderr']:.4f}"
    return [ppl, delta, mean, number(kld.get("p99"), 3),
            number(100 * kld["top1_agreement"], 2, "%") if "top1_agreement" in kld else "–",
            number(entry.get("weight_error", {}).get("linear_sqnr_db"), 2)]


def table(header: list, rows: list) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(cells) + " |" for cells in rows]


def header_lines(data: dict) -> list:
    model, text, machine = data["model"], data["text"], data["machine"]
    reference = data["rows"][0]
    source = model.get("gguf_tensors")
    source_text = ""
    if source:
        types = ", ".join(f"{name} x{count}" for name, count in source["tensor_types"].items())
        source_text = f" ({types}; {source['bits_per_weight']:.2f} bits per weight)"
    first_protocol = next(iter(data["protocols"]))
    # What the GGUF's weights were: its most frequent quantized tensor type.
    quantized = {name: count for name, count in (source or {}).get("tensor_types", {}).items()
                 if name not in ("F32", "F16", "BF16")}
    main_type = max(quantized, key=quantized.get) if quantized else None
    before = "quantized" if main_type is None else main_type if len(quantized) == 1 else f"mostly {main_type}"
    grid = ("It also means the reference's linear weights lie on Q4_1's grid (16 levels per block of 32 weights), "
            "which favours 4-bit formats whose blocks line up with those 32 (llama.cpp Q4_0, IQ4_NL and Q4_K's "
            "sub-blocks, MLX g32): they can partly land back on the grid, which a rotated code cannot."
            if main_type == "Q4_1" else
            "It also means the reference's linear weights lie on that GGUF's quantization grids (blocks of 32 or "
            "sub-blocks of 16-32 weights), which favours formats whose blocks line up with them.")
    lines = [
        f"- **Model**: `{model['gguf']}`{source_text}. The reference is its weights dequantized to F32 "
        f"(`hlwq import --dtype f32`, {model['reference_weights']:,} weights): they were {before} before, so "
        "every row measures the loss against that GGUF, not against the original BF16 model. " + grid,
        f"- **Text**: `{text['name']}` ({text['bytes']:,} bytes, sha256 {text['sha256'][:12]}), "
        f"{number(reference['protocols'].get(first_protocol, {}).get('tokens_in_text'), 0)} tokens.",
    ]
    for protocol, description in data["protocols"].items():
        base = reference["protocols"].get(protocol, {})
        windows = "the whole text" if not description["max_windows"] else \
            f"the first {description['max_windows']} windows"
        lines.append(f"- **Protocol `{protocol}`**: {description['description']}; {windows}: "
                     f"{base.get('windows', '?')} windows, {number(base.get('tokens_scored'), 0)} tokens scored.")
    embedding_share = model.get("embedding_share")
    lines += [
        "- **±** is one standard error of the mean over the scored tokens (for PPL: PPL times the stderr of the "
        "mean negative log-likelihood). Every row scores the same tokens, so most of that error is common to all "
        "rows and ΔPPL between rows is far better determined than ± suggests. Mean KLD (token by token against "
        "the reference's saved distributions) is the paired, precise comparison; top-1 = how often the most "
        "likely token is the reference's. Neither ± covers the luck of one quantization: variants of equal "
        "weight error (e.g. different sign seeds) can differ by several percent in KLD on a model this small.",
        "- **bpw**: bits per weight = 8 x (bytes of every stored tensor: codes, norms, scales, embeddings, "
        "norm weights) / the reference's weight count. **bpw@16** counts float tensors at 16 bits: HLWQ keeps the "
        f"embedding (tied with the output layer, {number(100 * embedding_share if embedding_share else None, 0)}% "
        "of the weights) in the reference's F32, the exports write BF16 and MLX quantizes it too; bpw@16 compares "
        "the formats, bpw the files as written. The plots use bpw@16.",
        "- **SQNR**: weight signal-to-quantization-noise from `hlwq inspect --ref`, element-weighted over the "
        f"{model.get('linear_weights', '?')} linear weights (not the embedding) in every row.",
        f"- **Machine**: {machine['cpu']}, {machine['cores']} cores, {number(machine['memory_gb'], 0)} GB, "
        f"{machine['system']}; hlwq {machine['hlwq_commit']}; {machine['date']}. Perplexity ran "
        f"{machine['jobs']} job(s) x {machine['threads']} threads (the reference alone with "
        f"{machine['jobs'] * machine['threads']})"
        + (". hlwq's rows ran with `hlwq ppl --backend cuda`, the same models on the GPU (results saved before "
           "2026-12-07 with every weight dequantized to F32 there); tests/engine/cuda_runner_test.cc bounds the "
           "GPU's logits against the CPU runtime's."
           if machine.get("ppl_backend") == "cuda" else "."),
    ]
    if data.get("bench_command"):
        loads = [e["bench"]["load_average_before"] for e in data["rows"] if "bench" in e]
        load_text = f" (1-minute load average before the runs: {min(loads):.1f} to {max(loads):.1f})" if loads else ""
        lines.append(f"- **decode tok/s**: `{data['bench_command']}`, the best of the repetitions (llama.cpp rows: "
                     "scripts/llama_cpp_bench.py, the same workload, its best), one model at a time with nothing "
                     f"else of this study running{load_text}. The machine may be shared: compare speeds as ratios "
                     "within one run.")
    return lines


def markdown(data: dict, plots: list) -> str:
    rows = data["rows"]
    lines = [f"# Quality study: {data['model']['name']}", ""] + header_lines(data)
    for protocol in data["protocols"]:
        cells = []
        for entry in rows:
            if entry["group"] == "ablation":
                continue
            if entry["family"] == "llama.cpp" and protocol not in entry["protocols"] and not entry.get("errors"):
                continue  # not measurable with this protocol (the notes say why)
            bench = entry.get("bench", {})
            cells.append([entry["label"], number(entry.get("bits_per_weight"), 3),
                          number(entry.get("bits_per_weight_floats_at_16"), 3),
                          number(entry["file_bytes"] / 1e6 if "file_bytes" in entry else None, 1)]
                         + measurement_cells(entry, protocol)
                         + [number(bench.get("decode_tokens_per_second_best_of_runs"), 1)])
        lines += ["", f"## Methods, protocol `{protocol}`", ""]
        lines += table(["method", "bpw", "bpw@16", "file MB", "PPL ± stderr", "ΔPPL", "mean KLD", "KLD p99", "top-1",
                        "SQNR dB", "decode tok/s"], cells)
    by_name = {entry["name"]: entry for entry in rows}
    ablation = [item for item in data.get("ablation", []) if item["row"] in by_name]
    if any(by_name[item["row"]]["group"] == "ablation" for item in ablation):
        for protocol in data["protocols"]:
            cells = []
            for item in ablation:
                entry = by_name[item["row"]]
                cells.append([f"Q{item['bits']}", item["variant"],
                              f"`{item['flags']}`" if item["flags"] else "(default)",
                              number(entry.get("bits_per_weight_floats_at_16"), 3)]
                             + measurement_cells(entry, protocol, kld_stderr=True))
            lines += ["", f"## Ablation (HLWQ quantize options), protocol `{protocol}`", ""]
            lines += table(["bits", "variant", "flags", "bpw@16", "PPL ± stderr", "ΔPPL", "mean KLD ± stderr",
                            "KLD p99", "top-1", "SQNR dB"], cells)
    notes = list(data["notes"]) + derived_notes(data)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{name}]({name})" for name in plots)]
    return "\n".join(lines) + "\n"


def derived_notes(data: dict) -> list:
    notes = []
    for entry in data["rows"]:
        error = entry.get("weight_error", {})
        exported = any(f"--to {target}" in entry["recipe"].split(" <- ")[0] for target in ("mlx", "ct-int4"))
        if exported and error.get("linear_tensors_quantized", 0) < error.get("linear_tensors", 0):
            left = error["linear_tensors"] - error["linear_tensors_quantized"]
            mostly = ", so it is mostly a BF16 model" if 2 * left > error["linear_tensors"] else ""
            notes.append(f"{entry['label']}: {left} of {error['linear_tensors']} linear weights stay BF16 (their "
                         f"input width is not a multiple of the group){mostly}.")
    for entry in data.get("llama_cpp_quantize", []):
        if entry.get("fallback_tensors"):
            types = ", ".join(f"{name} x{count}" for name, count in entry["tensor_types"].items())
            notes.append(f"llama.cpp {entry['type']}: {entry['fallback_tensors']} tensor(s) got a fallback type "
                         f"(llama.cpp's fallback for rows that do not fit the type's blocks: k-quants need rows divisible by "
                         f"256, which neither the demo's 576 nor Gemma 3's 640 are); tensors: {types}.")
    for entry in data["rows"]:
        for what, message in entry.get("errors", {}).items():
            notes.append(f"{entry['name']} ({what}) failed: {message}")
    return notes


# ---------------------------------------------------------------------------------------------
# Plots.

FAMILY_STYLE = {  # marker, color, legend
    "reference": ("*", "black", "reference"),
    "hlwq": ("o", "tab:blue", "HLWQ native"),
    "hlwq-export": ("s", "tab:orange", "HLWQ Q5 -> export"),
    "direct": ("^", "tab:green", "direct (MLX, CT-INT4)"),
    "llama.cpp": ("D", "tab:red", "llama.cpp"),
}


def short_label(entry: dict) -> str:
    return entry["name"].replace("-direct", "").replace("hlwq-", "").replace("llama.cpp-", "llama.cpp ")


def place_labels(axes, points: list, fontsize: float = 7) -> None:
    """Annotates (x, y, text) points, each label at the first of a few offsets where its drawn
    extent overlaps neither a marker nor a label already placed (else at the first offset)."""
    figure = axes.figure
    figure.canvas.draw()  # fixes the limits so that transData is final
    renderer = figure.canvas.get_renderer()
    marker = 4 * figure.dpi / 72  # markers are 7 points wide
    anchors = [(x, y, text, *axes.transData.transform((x, y))) for x, y, text in points]
    taken = [(px - marker, py - marker, px + marker, py + marker) for *_, px, py in anchors]
    offsets = [(4, 2), (4, -10), (-4, 2), (-4, -10), (4, 10), (4, -18), (-4, 10), (-4, -18), (4, 18), (-4, 18)]

    def overlaps(box) -> bool:
        return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken)

    for x, y, text, _, _ in sorted(anchors, key=lambda anchor: (anchor[0], anchor[1])):
        chosen = None
        for dx, dy in offsets:
            label = axes.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                                  ha="left" if dx > 0 else "right", va="bottom")
            extent = label.get_window_extent(renderer)
            box = (extent.x0 - 1, extent.y0 - 1, extent.x1 + 1, extent.y1 + 1)
            if not overlaps(box):
                chosen = (label, box)
                break
            label.remove()
        if chosen is None:  # crowded: the first offset, overlapping
            label = axes.annotate(text, (x, y), textcoords="offset points", xytext=offsets[0], fontsize=fontsize,
                                  va="bottom")
            extent = label.get_window_extent(renderer)
            chosen = (label, (extent.x0, extent.y0, extent.x1, extent.y1))
        taken.append(chosen[1])


def scatter_by_family(axes, entries: list, value, error=None) -> None:
    seen = set()
    for entry in entries:
        marker, color, legend = FAMILY_STYLE[entry["family"]]
        axes.errorbar(entry["bits_per_weight_floats_at_16"], value(entry), yerr=error(entry) if error else None,
                      fmt=marker, color=color, ms=7, capsize=2, label=None if legend in seen else legend)
        seen.add(legend)


def finish(axes, title: str) -> None:
    axes.set_xlabel("bits per weight, every tensor counted (float tensors at 16 bits)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)


def plottable(data: dict, protocol: str) -> list:
    """The methods of the main table measured with PROTOCOL; not the llama.cpp run of the reference
    itself, which only shows that the two engines agree."""
    return [e for e in data["rows"] if e["group"] != "ablation" and e["name"] != "llama.cpp-f32"
            and protocol in e["protocols"] and "bits_per_weight_floats_at_16" in e]


def plot_kld(data: dict, protocol: str, path: Path, plt) -> bool:
    entries = [e for e in plottable(data, protocol) if e["protocols"][protocol].get("kl_divergence")]
    if not entries:
        return False
    value = lambda e: e["protocols"][protocol]["kl_divergence"]["mean"]  # noqa: E731
    figure, axes = plt.subplots(figsize=(10, 6.5))
    scatter_by_family(axes, entries, value)
    native = sorted((e for e in entries if e["family"] == "hlwq"), key=lambda e: e["bits_per_weight_floats_at_16"])
    axes.plot([e["bits_per_weight_floats_at_16"] for e in native], [value(e) for e in native], color="tab:blue",
              lw=0.8)
    axes.set_yscale("log")
    axes.set_ylabel("mean KL-divergence from the reference (log)")
    finish(axes, f"KL-divergence vs size, protocol {protocol}")
    place_labels(axes, [(e["bits_per_weight_floats_at_16"], value(e), short_label(e)) for e in entries])
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return True


def plot_perplexity(data: dict, protocol: str, path: Path, plt) -> bool:
    """Linear y up to 3x the reference's perplexity; collapsed models (Q2, Q3) sit on the top edge
    as arrows labelled with their perplexity."""
    entries = plottable(data, protocol)
    reference = next((e for e in entries if e["name"] == "reference"), None)
    if not entries or reference is None:
        return False
    value = lambda e: e["protocols"][protocol]["perplexity"]  # noqa: E731
    limit = 3 * value(reference)
    inside = [e for e in entries if value(e) <= limit]
    outside = [e for e in entries if value(e) > limit]
    figure, axes = plt.subplots(figsize=(10, 6.5))
    scatter_by_family(axes, inside, value, error=lambda e: e["protocols"][protocol]["perplexity_stderr"])
    axes.axhline(value(reference), color="black", lw=0.6, ls="--", label="reference perplexity")
    top = max(value(e) + e["protocols"][protocol]["perplexity_stderr"] for e in inside) * 1.08
    if outside:
        top = max(top, limit)
        for entry in outside:
            axes.plot(entry["bits_per_weight_floats_at_16"], top * 0.985, marker="^",
                      color=FAMILY_STYLE[entry["family"]][1], ms=9)
    axes.set_ylim(min(value(e) for e in inside) * 0.95, top)
    axes.set_ylabel("perplexity (error bars: stderr; arrows: off the scale)")
    finish(axes, f"Perplexity vs size, protocol {protocol}")
    labels = [(e["bits_per_weight_floats_at_16"], value(e), short_label(e)) for e in inside]
    labels += [(e["bits_per_weight_floats_at_16"], top * 0.985, f"{short_label(e)}: {value(e):,.0f}") for e in outside]
    place_labels(axes, labels)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return True


def plot_ablation(data: dict, protocol: str, path: Path, plt) -> bool:
    by_name = {e["name"]: e for e in data["rows"]}
    items = [item for item in data.get("ablation", []) if item["row"] in by_name]
    if not any(by_name[item["row"]]["group"] == "ablation" for item in items):
        return False
    variants = list(dict.fromkeys(item["variant"] for item in items))
    bit_widths = sorted({item["bits"] for item in items}, reverse=True)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    width = 0.8 / len(bit_widths)
    sqnr_values = []
    for index, (bits, color) in enumerate(zip(bit_widths, ("tab:blue", "tab:orange", "tab:green"))):
        kld, sqnr = [], []
        for variant in variants:
            item = next((i for i in items if i["bits"] == bits and i["variant"] == variant), None)
            entry = by_name[item["row"]] if item else {}
            result = entry.get("protocols", {}).get(protocol, {}).get("kl_divergence", {})
            kld.append(result.get("mean", math.nan))
            sqnr.append(entry.get("weight_error", {}).get("linear_sqnr_db") or math.nan)
        positions = [p + (index - (len(bit_widths) - 1) / 2) * width for p in range(len(variants))]
        top.bar(positions, kld, width=width, color=color, label=f"Q{bits}")
        bottom.bar(positions, sqnr, width=width, color=color, label=f"Q{bits}")
        sqnr_values += [v for v in sqnr if math.isfinite(v)]
    top.set_yscale("log")
    top.set_ylabel("mean KLD from the reference (log)")
    top.set_title(f"Ablation of HLWQ's options, protocol {protocol}")
    bottom.set_ylabel("weight SQNR dB (linear weights)")
    if sqnr_values:
        bottom.set_ylim(min(sqnr_values) - 2, max(sqnr_values) + 1)
    bottom.set_xticks(list(range(len(variants))))
    bottom.set_xticklabels(variants, rotation=30, ha="right", fontsize=8)
    for axes in (top, bottom):
        axes.grid(True, axis="y", which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return True


def plot_all(data: dict, folder: Path) -> tuple:
    """Returns (file names written, notes)."""
    if importlib.util.find_spec("matplotlib") is None:
        return [], ["plots skipped: python3 has no matplotlib (scripts/setup.sh installs it)."]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for old in folder.glob("*.png"):
        old.unlink()
    for protocol in data["protocols"]:
        for name, draw in (("kld_vs_bpw", plot_kld), ("ppl_vs_bpw", plot_perplexity), ("ablation", plot_ablation)):
            path = folder / f"{name}.{protocol}.png"
            if draw(data, protocol, path, plt):
                written.append(path.name)
    return written, []


def write_report(data: dict, folder: Path) -> None:
    plots, notes = plot_all(data, folder)
    report = dict(data, notes=data["notes"] + notes)
    (folder / "quality.md").write_text(markdown(report, plots))


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(sys.argv[1])
    write_report(json.loads(path.read_text()), path.parent)
    print(path.parent / "quality.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
