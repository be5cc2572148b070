#!/usr/bin/env python3
"""Cross-checks an MLX folder written by `hlwq export --to mlx` with the real mlx / mlx_lm packages.

1. mlx_lm loads the folder (mlx_lm.utils.load_model: config, weights, quantized layers).
2. For every quantized layer, mx.dequantize(weight, scales, biases) equals hlwq's own
   dequantization of the same folder (`hlwq export --to bf16 --dtype f32`, rounded to the scale dtype).
3. Optionally (--generate) the model produces text through mlx_lm with the folder's tokenizer.

Prints one line per check and exits non-zero on any mismatch.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mlx_folder", type=pathlib.Path)
    parser.add_argument("--hlwq", default="build/hlwq", help="path of the hlwq binary")
    parser.add_argument("--generate", default=None, help="prompt to generate a few tokens from")
    args = parser.parse_args()

    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.utils import load_model

    config = json.loads((args.mlx_folder / "config.json").read_text())
    quantization = config["quantization"]
    model, _ = load_model(args.mlx_folder)
    print(f"mlx_lm loaded {args.mlx_folder} ({config['model_type']}, {quantization})")

    with tempfile.TemporaryDirectory() as temporary:
        dequantized_folder = pathlib.Path(temporary) / "dequantized"
        subprocess.run([args.hlwq, "export", "-m", str(args.mlx_folder), "-o", str(dequantized_folder),
                        "--to", "bf16", "--dtype", "f32"], check=True, stdout=subprocess.DEVNULL)
        reference = {}
        for path in sorted(dequantized_folder.glob("*.safetensors")):
            reference.update(mx.load(str(path)))

        checked = mismatched = 0
        worst = 0.0
        for name, module in model.named_modules():
            if not isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
                continue
            weights = mx.dequantize(module.weight, module.scales, module.biases,
                                    group_size=module.group_size, bits=module.bits)
            ours = reference[name + ".weight"].astype(weights.dtype)
            mlx_values = np.array(weights.astype(mx.float32))
            our_values = np.array(ours.astype(mx.float32))
            if mlx_values.shape != our_values.shape:
                print(f"MISMATCH shape {name}: mlx {mlx_values.shape} hlwq {our_values.shape}")
                mismatched += 1
                continue
            difference = np.abs(mlx_values - our_values)
            worst = max(worst, float(difference.max()))
            different = int((difference > 0).sum())
            checked += 1
            if different:
                mismatched += 1
                print(f"MISMATCH {name}: {different} of {difference.size} values differ, max {difference.max():.3e}")
        print(f"mx.dequantize vs hlwq dequantization: {checked} quantized layers, {mismatched} with differences, "
              f"max abs difference {worst:.3e}")
        if checked == 0:
            print("no quantized layers found")
            return 1

    if args.generate:
        from mlx_lm import generate
        from mlx_lm.utils import load
        model, tokenizer = load(str(args.mlx_folder))
        text = generate(model, tokenizer, prompt=args.generate, max_tokens=24, verbose=False)
        print(f"mlx_lm generate: {args.generate!r} -> {text!r}")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
