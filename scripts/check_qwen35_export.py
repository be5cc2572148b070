#!/usr/bin/env python3
"""Cross-checks a Qwen3.5 folder written by `hlwq export` with the real loaders.

  check_qwen35_export.py FOLDER --ids FIXTURE/ids.json --expected FIXTURE/logits.f32 --engine transformers
  check_qwen35_export.py FOLDER --ids FIXTURE/ids.json --expected-folder DENSE --engine mlx

--engine transformers: transformers loads FOLDER as the class config.json names (for the published
  layout, Qwen3_5ForConditionalGeneration with its vision tower) in float32 and computes the text
  logits of the fixture's ids. With --same-tensors ORIGINAL, every model.visual.* and mtp.* tensor
  of ORIGINAL must be in FOLDER with identical values (they are not quantized by default).
--engine mlx: mlx_lm loads FOLDER (mlx_lm.utils.load_model) and computes the logits.
The logits are compared with --expected (a float32 file, ids x vocab) or with transformers' logits on
--expected-folder (e.g. hlwq's float32 dequantization of the same export: then only the engines
differ, not the weights). Prints the largest and the RMS difference relative to the expected logits'
RMS and the top-1 agreement; exits 1 when they exceed --tolerance / --rms-tolerance.
Needs torch + transformers >= 5 (and mlx + mlx_lm for --engine mlx).
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--ids", type=pathlib.Path, required=True)
    parser.add_argument("--expected", type=pathlib.Path)
    parser.add_argument("--expected-folder", type=pathlib.Path)
    parser.add_argument("--engine", choices=["transformers", "mlx"], required=True)
    parser.add_argument("--same-tensors", type=pathlib.Path)
    parser.add_argument("--tolerance", type=float, required=True, help="largest |difference| / RMS(expected)")
    parser.add_argument("--rms-tolerance", type=float, help="RMS(difference) / RMS(expected), when given")
    args = parser.parse_args()

    fixture = json.loads(args.ids.read_text())
    ids, vocab = fixture["ids"], fixture["vocab"]
    if args.expected is not None:
        expected = np.fromfile(args.expected, dtype="<f4").reshape(len(ids), vocab)
    else:
        expected = transformers_logits(args.expected_folder, ids)
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
