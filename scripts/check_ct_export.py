#!/usr/bin/env python3
"""Cross-checks a CompressedTensors INT4 folder written by `hlwq export --to ct-int4`.

transformers (with the compressed-tensors package) loads and decompresses the folder; its logits
on a prompt must equal those of hlwq's own dequantization of the same folder (`hlwq export --to
bf16`), loaded by transformers as a plain BF16 model. Exits non-zero on a difference.
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("ct_folder", type=pathlib.Path)
    parser.add_argument("--hlwq", default="build/hlwq")
    parser.add_argument("--prompt", default="The capital of France is")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as temporary:
        dequantized = pathlib.Path(temporary) / "bf16"
        subprocess.run([args.hlwq, "export", "-m", str(args.ct_folder), "-o", str(dequantized), "--to", "bf16"],
                       check=True, stdout=subprocess.DEVNULL)
        tokenizer = AutoTokenizer.from_pretrained(args.ct_folder)
        ids = tokenizer(args.prompt, return_tensors="pt").input_ids
        logits = {}
        for name, folder in (("compressed-tensors", args.ct_folder), ("hlwq", dequantized)):
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
            with torch.no_grad():
                logits[name] = model(ids).logits.float()
                generated = model.generate(ids, max_new_tokens=12, do_sample=False)
            print(f"{name}: {tokenizer.decode(generated[0])!r}")
    difference = (logits["compressed-tensors"] - logits["hlwq"]).abs().max().item()
    print(f"logits: max abs difference {difference:.3e} (compressed-tensors decompression vs hlwq dequantization)")
    return 0 if difference == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
