#!/usr/bin/env python3
"""Checks scripts/sqnr_frontier.py's accounting on a synthetic model, without any download:
bits per weight from stored bytes (gguf-py's Q4_0 / Q8_0 / MXFP4, HLWQ's codes + fp16 gains, also
with mixed widths (--target-bpw), MLX's
codes + fp16 scales and biases, and the K-quant / IQ4 types of llama.cpp's mixes read back from a
GGUF), the pooled and per-tensor SQNR, and the frontier. The llamacpp rows' read-back (tensor names,
each tensor's type and bytes, the check of the F32 GGUF against the reference) runs on GGUFs written
here with gguf-py: llama.cpp itself is not needed.

  python3 scripts/test_sqnr_frontier.py [--hlwq build/hlwq]

The gguf part needs numpy and gguf (pip install gguf); the HLWQ and MLX part needs the hlwq binary.
Exit status: 0 when every check ran and passed, 1 on any failed check, 77 when none failed but a part
was skipped (gguf or the hlwq binary absent): a skip is never reported as a pass.
"""
import argparse
import json
import math
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sqnr_frontier as sf  # noqa: E402

failures = []
skipped = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def synthetic_model(folder):
    """Two Llama-style layers, widths 256 and 512 (multiples of 32, 64, 128 and 256)."""
    rng = np.random.default_rng(7)
    hidden, inter, vocab = 256, 512, 256
    tensors = {"model.embed_tokens.weight": rng.standard_normal((vocab, hidden)) * 0.02,
               "model.norm.weight": np.ones(hidden)}
    for layer in range(2):
        p = f"model.layers.{layer}."
        for name, shape in (("self_attn.q_proj", (hidden, hidden)), ("self_attn.k_proj", (hidden, hidden)),
                            ("self_attn.v_proj", (hidden, hidden)), ("self_attn.o_proj", (hidden, hidden)),
                            ("mlp.gate_proj", (inter, hidden)), ("mlp.up_proj", (inter, hidden)),
                            ("mlp.down_proj", (hidden, inter))):
            tensors[p + name + ".weight"] = rng.standard_normal(shape) * 0.02 * (1 + layer)
        tensors[p + "input_layernorm.weight"] = np.ones(hidden)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(hidden)
    write_safetensors(folder / "model.safetensors", tensors)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "intermediate_size": inter, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 4, "vocab_size": vocab, "rms_norm_eps": 1e-5, "max_position_embeddings": 128,
              "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config))
    # A minimal byte-level tokenizer (as scripts/make_synthetic_model.py writes): hlwq wants one.
    tokenizer = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
                 "post_processor": None, "decoder": None,
                 "model": {"type": "BPE", "vocab": {chr(0x100 + i): i for i in range(vocab)}, "merges": [],
                           "byte_fallback": False}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    return tensors


def linear_of(folder):
    reference = sf.folder_tensors(folder)
    linear = {}
    for name in reference:
        if sf.LINEAR.match(name):
            weight = sf.read_f32(reference[name]).astype(np.float64)
            linear[name] = {"shape": list(weight.shape), "count": weight.size, "energy": float((weight ** 2).sum())}
    return reference, linear


# Bits per weight of the types llama.cpp's mixes use: K-quants and IQ4_XS in super-blocks of 256
# weights (Q2_K 84 bytes, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210, IQ4_XS 136), IQ4_NL and the
# fallback types in blocks of 32 (IQ4_NL 18, Q4_0 18, Q5_0 22, Q5_1 24, Q8_0 34).
MIX_TYPE_BITS = {"Q2_K": 2.625, "Q3_K": 3.4375, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625, "IQ4_XS": 4.25,
                 "IQ4_NL": 4.5, "Q4_0": 4.5, "Q5_0": 5.5, "Q5_1": 6.0, "Q8_0": 8.5}


def write_gguf(path, arrays):
    """arrays: GGUF tensor name -> (type name, data: float32 [rows, cols] for F32, else the packed
    uint8 [rows, bytes per row])."""
    from gguf import GGMLQuantizationType, GGUFWriter

    writer = GGUFWriter(str(path), arch="llama")
    for name, (type_name, data) in arrays.items():
        if type_name == "F32":
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
        else:
            writer.add_tensor(name, data, raw_dtype=GGMLQuantizationType[type_name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check_llamacpp_readback(folder, reference, linear):
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

    for type_name, expected in MIX_TYPE_BITS.items():
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
        check(8 * size / block == expected, f"{type_name}: {size} bytes per {block} weights == {expected} bits")
    check(sf.gguf_name("model.layers.3.mlp.down_proj.weight") == "blk.3.ffn_down.weight"
          and sf.gguf_name("layers.0.self_attn.o_proj.weight") == "blk.0.attn_output.weight",
          "Hugging Face names map to llama.cpp's (down_proj -> ffn_down, o_proj -> attn_output)")

    # The F32 GGUF, as convert_hf_to_gguf.py writes it: layer 0's q rows permuted (as the converter
    # permutes q/k for Llama-style rope), everything else as in the reference.
    names = list(linear)
    permuted = "model.layers.0.self_attn.q_proj.weight"
    weights = {n: sf.read_f32(reference[n]) for n in names}
    stored = {n: (weights[n][::-1] if n == permuted else weights[n]) for n in names}
    f32 = folder / "model.F32.gguf"
    write_gguf(f32, {sf.gguf_name(n): ("F32", stored[n]) for n in names})
    layout = sf.gguf_layout(f32, linear, reference)
    check(layout[permuted] == "rows permuted" and list(layout.values()).count("identical") == len(names) - 1,
          "the F32 GGUF's layout: layer 0's permuted q rows found, every other weight identical")

    # A mix like llama.cpp's: Q8_0 and Q4_0 quantized by gguf-py (the permuted q from the GGUF's own
    # rows), the K-quants and IQ4 types as zero blocks (they dequantize to 0: error = the weight's
    # energy, SQNR 0 dB), each with its own bytes per weight.
    mix = ["Q8_0", "Q4_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ4_NL"]
    chosen, arrays = {}, {}
    for i, name in enumerate(names):
        type_name = mix[i % len(mix)] if name != permuted else "Q8_0"
        qtype = GGMLQuantizationType[type_name]
        block, size = GGML_QUANT_SIZES[qtype]
        rows, cols = stored[name].shape
        packed = (quants.quantize(stored[name], qtype) if type_name in ("Q8_0", "Q4_0")
                  else np.zeros((rows, cols // block * size), dtype=np.uint8))
        chosen[name], arrays[sf.gguf_name(name)] = type_name, (type_name, packed)
    mixed = folder / "model.MIX.gguf"
    write_gguf(mixed, arrays)
    errors, bits, types = sf.gguf_errors(mixed, linear, reference, layout, f32)
    check(types == chosen, "each linear weight read back with the type it was stored in")
    check(all(bits[n] == MIX_TYPE_BITS[chosen[n]] * linear[n]["count"] for n in names),
          "each tensor's stored bits == its type's bits per weight x its weights")
    zero = [n for n in names if chosen[n] not in ("Q8_0", "Q4_0")]
    check(all(abs(errors[n] - linear[n]["energy"]) <= 1e-9 * linear[n]["energy"] for n in zero),
          f"the {len(zero)} zero-block tensors (K-quants, IQ4) err by exactly their energy")
    for name in [n for n in names if chosen[n] in ("Q8_0", "Q4_0")]:
        qtype = GGMLQuantizationType[chosen[name]]
        restored = quants.dequantize(quants.quantize(weights[name], qtype), qtype)
        direct = float(((restored.astype(np.float64) - weights[name]) ** 2).sum())
        if abs(errors[name] - direct) > 1e-6 * direct:
            check(False, f"{name} ({chosen[name]}): read-back error {errors[name]:.6g} == direct {direct:.6g}")
            break
    else:
        check(True, "Q8_0 / Q4_0 tensors err as when quantized directly (the permuted q too: rows are independent)")
    result = sf.summarize("llamacpp-mix", "llama.cpp (libllama)", {"type": "MIX"}, linear, errors, bits)
    expected = sum(MIX_TYPE_BITS[chosen[n]] * linear[n]["count"] for n in names) / sum(linear[n]["count"] for n in names)
    check(abs(result["bits_per_weight"] - expected) < 1e-12,
          f"the mix's bits per weight {result['bits_per_weight']:.4f} == the weight-weighted mean {expected:.4f}")
    mix_types, roles = sf.mix_of(linear, types, errors)
    check(sum(e["tensors"] for e in mix_types.values()) == len(names)
          and abs(sum(e["share"] for e in mix_types.values()) - 1) < 1e-12
          and all(abs(mix_types[t]["sqnr_db"]) < 1e-9 for t in mix_types if t not in ("Q8_0", "Q4_0")),
          "the mix's summary: every tensor counted once, shares add to 1, zero-block types at 0 dB")
    check(roles["attn_q"] == {"Q8_0": 1, chosen["model.layers.1.self_attn.q_proj.weight"]: 1},
          "types by role: attn_q's two tensors")

    # A converter that changed a weight (not only its row order) is refused.
    broken = dict(stored)
    broken[names[1]] = stored[names[1]] * 1.0001
    write_gguf(folder / "broken.F32.gguf", {sf.gguf_name(n): ("F32", broken[n]) for n in names})
    try:
        sf.gguf_layout(folder / "broken.F32.gguf", linear, reference)
        refused = False
    except SystemExit:
        refused = True
    check(refused, "an F32 GGUF whose weights differ from the reference is refused")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hlwq", default=str(sf.ROOT / "build" / "hlwq"))
    cli = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "model"
        folder.mkdir()
        tensors = synthetic_model(folder)
        reference, linear = linear_of(folder)
        check(len(linear) == 14, f"14 linear weights found (found {len(linear)}; norms and embedding left out)")
        weights = sum(t["count"] for t in linear.values())

        # summarize: pooled SQNR is total energy over total error, not a mean of dB.
        errors = {name: linear[name]["energy"] * (0.01 if "mlp" in name else 0.1) for name in linear}
        bits = {name: 4 * linear[name]["count"] for name in linear}
        result = sf.summarize("x", "m", {}, linear, errors, bits)
        energy = sum(t["energy"] for t in linear.values())
        expected = 10 * math.log10(energy / sum(errors.values()))
        check(abs(result["sqnr_db"] - expected) < 1e-9, f"pooled SQNR {result['sqnr_db']:.4f} == {expected:.4f}")
        check(abs(result["median_tensor_sqnr_db"] - 10.0) < 1e-9,
              f"median tensor SQNR {result['median_tensor_sqnr_db']:.4f} == 10 (8 tensors at 10 dB, 6 at 20 dB)")
        check(result["bits_per_weight"] == 4.0, "4 bits stored per weight count as 4.0")

        # frontier: a point beaten by one with fewer bits is off it.
        points = [{"bits_per_weight": b, "sqnr_db": s} for b, s in ((4, 20), (4.5, 19), (5, 25), (4, 18))]
        best = sf.frontier(points)
        check([(p["bits_per_weight"], p["sqnr_db"]) for p in best] == [(4, 20), (5, 25)], "frontier drops beaten points")
        check(abs(sf.interpolate(points, 4.5) - 22.5) < 1e-12, "frontier interpolates linearly between its points")

        # gguf-py: Q4_0 is 18 bytes per 32 weights (4.5 bits), Q8_0 34 (8.5), MXFP4 17 (4.25).
        try:
            import gguf  # noqa: F401
        except ImportError:
            print("SKIPPED gguf part: gguf not installed (pip install gguf)")
            skipped.append("gguf part")
        else:
            for type_name, expected_bits in (("Q4_0", 4.5), ("Q8_0", 8.5), ("MXFP4", 4.25), ("Q5_1", 6.0)):
                row = sf.measure_gguf(None, linear, reference, type_name)
                check(row["bits_per_weight"] == expected_bits, f"{type_name}: {row['bits_per_weight']} bits per weight "
                      f"== {expected_bits}")
                check(0 < row["sqnr_db"] < 6.0206 * expected_bits + 3,
                      f"{type_name}: SQNR {row['sqnr_db']:.2f} dB positive and near or below the Gaussian bound")
            check_llamacpp_readback(Path(temporary), reference, linear)

        # HLWQ and MLX through the hlwq binary.
        if not Path(cli.hlwq).is_file():
            print(f"SKIPPED hlwq part: no hlwq binary at {cli.hlwq} (scripts/build.sh)")
            skipped.append("hlwq part")
        else:
            args = argparse.Namespace(hlwq=cli.hlwq, model=folder, threads=2, work=Path(temporary) / "work")
            args.work.mkdir()
            for bits_, block in ((4, 32), (4, 128), (8, 64)):
                row = sf.measure_hlwq(args, linear, bits_, block)
                check(row["bits_per_weight"] == bits_ + 16 / block,
                      f"HLWQ Q{bits_} block {block}: {row['bits_per_weight']} bits == {bits_} + 16/{block}")
                check(abs(row["bits_per_weight"] - row["inspect_bits_per_weight"]) < 1e-9,
                      "  and hlwq inspect counts the same")
                # (hlwq inspect's own summary SQNR averages the tensors' relative MSE by weight count; the
                # pooled one here weighs them by energy, so the two differ when tensors differ in scale.)
            for bits_, group in ((4, 64), (3, 32)):
                row = sf.measure_mlx(args, linear, bits_, group)
                check(row["bits_per_weight"] == bits_ + 32 / group,
                      f"MLX {bits_}-bit g{group}: {row['bits_per_weight']} bits == {bits_} + 32/{group} (f16 scale + bias)")
            # --target-bpw: mixed widths whose stored bits stay within the target.
            row = sf.measure_hlwq_target(args, linear, 4.5)
            check(4.0 < row["bits_per_weight"] <= 4.5 + 1e-9,
                  f"HLWQ --target-bpw 4.5: {row['bits_per_weight']:.4f} stored bits, at most 4.5")
            check(sum(row["widths"].values()) == len(linear) and set(row["widths"]) <= set(range(2, 9)),
                  f"  every linear weight has a width 2..8 ({row['widths']})")
            check(abs(row["bits_per_weight"] - row["inspect_bits_per_weight"]) < 1e-9, "  and hlwq inspect counts the same")
            check(sf.measure_hlwq_target(args, linear, 8.5) is None,
                  "  a target beyond 8-bit codes (8.5 bits at block 128) is skipped, not an error")
            uniform = sf.measure_hlwq(args, linear, 4, 128)
            check(row["sqnr_db"] >= uniform["sqnr_db"] - 0.05,
                  f"  SQNR {row['sqnr_db']:.2f} dB not below uniform Q4 block 128's {uniform['sqnr_db']:.2f} "
                  f"({uniform['bits_per_weight']} bits)")
            # Independent of hlwq inspect: dequantize an HLWQ folder to F32 and compare in numpy.
            quantized, restored = args.work / "q4", args.work / "q4-f32"
            subprocess.run([cli.hlwq, "quantize", "-m", folder, "-o", quantized, "--bits", "4", "--block", "64"],
                           check=True, stdout=subprocess.DEVNULL)
            subprocess.run([cli.hlwq, "export", "-m", quantized, "-o", restored, "--to", "bf16", "--dtype", "f32"],
                           check=True, stdout=subprocess.DEVNULL)
            dequantized = sf.folder_tensors(restored)
            noise = sum(float(((sf.read_f32(dequantized[n]).astype(np.float64) - tensors[n]) ** 2).sum()) for n in linear)
            numpy_sqnr = 10 * math.log10(energy / noise)
            row = sf.measure_hlwq(args, linear, 4, 64)
            check(abs(numpy_sqnr - row["sqnr_db"]) < 1e-3,
                  f"HLWQ Q4 b64 SQNR from the F32 dequantization {numpy_sqnr:.4f} == via inspect {row['sqnr_db']:.4f}")
    if failures:
        print(f"{len(failures)} failed")
        return 1
    if skipped:
        print(f"no check failed, but SKIPPED: {', '.join(skipped)} (not a pass)")
        return 77
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
