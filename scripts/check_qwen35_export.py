#!/usr/bin/env python3
"""Cross-checks a Qwen3.5 folder written by `hlwq export` with the real loaders.

  check_qwen35_export.py FOLDER --ids FIXTURE/ids.json --expected FIXTURE/logits.f32 --engine transformers
  check_qwen35_export.py FOLDER --ids FIXTURE/ids.json --expected-folder DENSE --engine mlx
  check_qwen35_export.py PACK --ids FIXTURE/ids.json --expected-folder PLAIN --expected-engine mlx --engine mlx

--engine transformers: transformers loads FOLDER as the class config.json names (for the published
  layout, Qwen3_5ForConditionalGeneration with its vision tower) in float32 and computes the text
  logits of the fixture's ids. With --same-tensors ORIGINAL, every model.visual.* and mtp.* tensor
  of ORIGINAL must be in FOLDER with identical values (they are not quantized by default).
--engine mlx: mlx_lm loads FOLDER (mlx_lm.utils.load_model) and computes the logits (a prism Hadamard
  pack too: its model_type prism_hadamard_qwen35 is an mlx-lm module).
The logits are compared with --expected (a float32 file, ids x vocab) or with the logits of
--expected-engine (transformers by default, or mlx) on --expected-folder (e.g. hlwq's float32
dequantization of the same export: then only the engines or the compute paths differ, not the
weights). Prints the largest and the RMS difference relative to the expected logits'
RMS and the top-1 agreement; exits 1 when they exceed --tolerance / --rms-tolerance.
--prism-weights PLAIN (FOLDER a prism Hadamard pack): also each packed module as mlx-lm rebuilds it
  (mx.dequantize, inverse hadamard_rotate) must equal PLAIN's weight of that name to 1e-6 (the
  embedding, returned in float16, to one float16 ulp).
--prism-original DENSE: each packed module as mlx-lm rebuilds it must be within --prism-error
  (relative RMS, default 0.5) of DENSE's weight (2-bit groups of 128 give ~0.45 on Gaussian weights).
Needs torch + transformers >= 5 where transformers runs, mlx + mlx_lm where mlx runs.
"""
import argparse
import json
import pathlib
import sys

import numpy as np


def transformers_logits(folder, ids):
    import torch
    import transformers
    config = json.loads((folder / "config.json").read_text())
    model_class = getattr(transformers, config["architectures"][0])
    model = model_class.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def mlx_logits(folder, ids):
    import mlx.core as mx
    from mlx_lm.utils import load_model
    model, _ = load_model(folder)
    logits = model(mx.array([ids]))
    return np.array(logits[0].astype(mx.float32))


def same_tensors(original, exported):
    from safetensors.torch import load_file as load_torch  # torch: numpy has no bfloat16

    def tensors(folder):
        found = {}
        for path in sorted(folder.glob("*.safetensors")):
            found.update(load_torch(str(path)))
        return found

    before, after = tensors(original), tensors(exported)
    kept = [name for name in before if name.startswith("model.visual.") or name.startswith("mtp.")]
    different = [name for name in kept if name not in after or not bool((before[name] == after[name]).all())
                 or before[name].dtype != after[name].dtype]
    print(f"vision tower and mtp tensors kept: {len(kept) - len(different)} of {len(kept)} identical")
    for name in different:
        print(f"MISMATCH {name}")
    return not different and len(kept) > 0


def prism_against_original(pack_folder, original_folder, bound):
    """The relative RMS error of each module mlx-lm rebuilds from a prism pack against the original
    (dense) model's weight: a wrong rotation or sign shows as an error near sqrt(2), 2-bit near 0.45."""
    import mlx.core as mx
    from mlx_lm.models.prism_hadamard_qwen35 import hadamard_rotate
    from mlx_lm.utils import load_model
    pack, _ = load_model(pack_folder)
    packed = dict(pack.language_model.named_modules())
    # Read directly (mlx-lm has no module for the Qwen3_5ForCausalLM layout): the pack's
    # model.X is model.language_model.X in the published layout.
    original = {}
    for path in sorted(original_folder.glob("*.safetensors")):
        original.update(mx.load(str(path)))

    def original_weight(module_path):
        name = module_path + ".weight"
        if name not in original and name.startswith("model."):
            name = "model.language_model." + name[len("model."):]
        return original[name]

    worst = 0.0
    for record in pack.args.modules:
        module = packed[record["path"]]
        weight = mx.dequantize(module.weight, module.scales, module.biases, group_size=128, bits=2)
        weight = weight.astype(mx.float32)
        if module.block:
            weight = hadamard_rotate(weight, module.block, module.signs, inverse=True)
        expected = np.array(original_weight(record["path"]).astype(mx.float32), dtype=np.float64)
        error = np.sqrt(np.mean((np.array(weight, dtype=np.float64) - expected) ** 2) / np.mean(expected ** 2))
        worst = max(worst, float(error))
    print(f"prism modules rebuilt by mlx-lm vs the original weights: largest relative RMS error {worst:.4f}")
    return worst <= bound


def prism_weights(pack_folder, plain_folder):
    """Each packed module of a prism Hadamard pack as mlx-lm rebuilds it (mx.dequantize, then the
    inverse hadamard_rotate) against the weight of the same name in PLAIN. Linear modules must agree
    to 1e-6; the embedding's rows come back in float16 (rounded after the rotation, whose summation
    order may differ from hlwq's), so they must agree to one float16 ulp. Returns True when they do."""
    import mlx.core as mx
    from mlx_lm.models.prism_hadamard_qwen35 import hadamard_rotate
    from mlx_lm.utils import load_model
    pack, _ = load_model(pack_folder)
    plain, _ = load_model(plain_folder)
    packed = dict(pack.language_model.named_modules())
    dense = dict(plain.language_model.named_modules())
    worst_linear, worst_ulps = 0.0, 0.0
    for record in pack.args.modules:
        module = packed[record["path"]]
        weight = mx.dequantize(module.weight, module.scales, module.biases, group_size=128, bits=2)
        # float16 rows for the embedding (as its lookup computes), float32 otherwise (the rotation
        # returns its input's dtype).
        weight = weight.astype(mx.float16 if record["embedding"] else mx.float32)
        if module.block:
            weight = hadamard_rotate(weight, module.block, module.signs, inverse=True)
        expected = np.array(dense[record["path"]].weight.astype(mx.float32))
        difference = np.abs(np.array(weight.astype(mx.float32)) - expected)
        if record["embedding"]:
            ulp = np.spacing(np.abs(expected).astype(np.float16)).astype(np.float32)
            worst_ulps = max(worst_ulps, float((difference / ulp).max()))
        else:
            worst_linear = max(worst_linear, float(difference.max()))
    print(f"prism modules rebuilt by mlx-lm vs {plain_folder.name}: {len(pack.args.modules)} modules, "
          f"linear largest difference {worst_linear:.3e}, embedding {worst_ulps:.2f} float16 ulp")
    return worst_linear <= 1e-6 and worst_ulps <= 1.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--ids", type=pathlib.Path, required=True)
    parser.add_argument("--expected", type=pathlib.Path)
    parser.add_argument("--expected-folder", type=pathlib.Path)
    parser.add_argument("--engine", choices=["transformers", "mlx"], required=True)
    parser.add_argument("--expected-engine", choices=["transformers", "mlx"], default="transformers")
    parser.add_argument("--same-tensors", type=pathlib.Path)
    parser.add_argument("--prism-original", type=pathlib.Path,
                        help="FOLDER is a prism Hadamard pack of this dense model: each module mlx-lm rebuilds "
                             "must be within --prism-error (relative RMS) of its weight")
    parser.add_argument("--prism-error", type=float, default=0.5)
    parser.add_argument("--prism-weights", type=pathlib.Path,
                        help="FOLDER is a prism Hadamard pack: its modules rebuilt by mlx-lm must equal this "
                             "plain folder's weights to 1e-6")
    parser.add_argument("--tolerance", type=float, required=True, help="largest |difference| / RMS(expected)")
    parser.add_argument("--rms-tolerance", type=float, help="RMS(difference) / RMS(expected), when given")
    args = parser.parse_args()

    fixture = json.loads(args.ids.read_text())
    ids, vocab = fixture["ids"], fixture["vocab"]
    if args.expected is not None:
        expected = np.fromfile(args.expected, dtype="<f4").reshape(len(ids), vocab)
    else:
        engine = transformers_logits if args.expected_engine == "transformers" else mlx_logits
        expected = engine(args.expected_folder, ids)
    actual = transformers_logits(args.folder, ids) if args.engine == "transformers" else mlx_logits(args.folder, ids)
    ok = True
    if actual.shape != expected.shape:
        print(f"MISMATCH logits shape {actual.shape} vs {expected.shape}")
        return 1
    rms = float(np.sqrt(np.mean(expected.astype(np.float64) ** 2)))
    worst = float(np.abs(actual - expected).max())
    rms_difference = float(np.sqrt(np.mean((actual.astype(np.float64) - expected) ** 2)))
    agreement = int((actual.argmax(-1) == expected.argmax(-1)).sum())
    print(f"{args.engine} logits: max abs difference {worst:.4e} = {worst / rms:.4f} x RMS {rms:.4f}, "
          f"RMS difference {rms_difference / rms:.4f} x RMS, top-1 agreement {agreement}/{len(ids)}")
    if worst / rms > args.tolerance:
        print(f"FAIL: largest difference above {args.tolerance} x RMS")
        ok = False
    if args.rms_tolerance is not None and rms_difference / rms > args.rms_tolerance:
        print(f"FAIL: RMS difference above {args.rms_tolerance} x RMS")
        ok = False
    if args.same_tensors is not None and not same_tensors(args.same_tensors, args.folder):
        ok = False
    if args.prism_original is not None and not prism_against_original(args.folder, args.prism_original,
                                                                        args.prism_error):
        print(f"FAIL: a rebuilt module is further than {args.prism_error} (relative RMS) from the original")
        ok = False
    if args.prism_weights is not None and not prism_weights(args.folder, args.prism_weights):
        print("FAIL: prism modules differ from the plain folder's weights")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
