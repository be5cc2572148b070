#!/usr/bin/env python3
"""Cross-checks `hlwq import` against Hugging Face transformers' own GGUF loader.

transformers can load a GGUF directly (dequantizing with gguf-py and undoing llama.cpp's Q/K
permutation). This script loads the same GGUF that way and the folder hlwq imported, and checks:
  1. every tensor of the state dict is identical (float32),
  2. the logits of a prompt agree,
  3. the imported tokenizer.json gives the same ids as transformers' GGUF tokenizer on a text
     (WikiText-2 when given, else built-in sentences),
  4. greedy generation from the imported folder (printed, to eyeball).
Exits non-zero on a mismatch.
"""
import argparse
import pathlib
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf", type=pathlib.Path)
    parser.add_argument("imported", type=pathlib.Path)
    parser.add_argument("--text", type=pathlib.Path, default=None, help="text file for the tokenizer check")
    parser.add_argument("--max-lines", type=int, default=0, help="0: the whole file")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    failures = 0
    reference = AutoModelForCausalLM.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name,
                                                     torch_dtype=torch.float32)
    imported = AutoModelForCausalLM.from_pretrained(args.imported, torch_dtype=torch.float32)
    reference_state = reference.state_dict()
    imported_state = imported.state_dict()
    worst = 0.0
    for name, value in reference_state.items():
        if name not in imported_state:
            print(f"MISSING {name}")
            failures += 1
            continue
        other = imported_state[name]
        if other.shape != value.shape:
            print(f"SHAPE {name}: {tuple(other.shape)} vs {tuple(value.shape)}")
            failures += 1
            continue
        difference = (other - value).abs().max().item()
        worst = max(worst, difference)
        if difference != 0:
            print(f"DIFFERS {name}: max abs {difference:.3e}")
            failures += 1
    print(f"state dict: {len(reference_state)} tensors compared, max abs difference {worst:.3e}")

    reference_tokenizer = AutoTokenizer.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name)
    imported_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(args.imported / "tokenizer.json"))
    if args.text:
        lines = args.text.read_text(encoding="utf-8").splitlines(keepends=True)
        if args.max_lines:
            lines = lines[: args.max_lines]
    else:
        lines = ["Hello world! The quick brown fox jumps over 12345 lazy dogs.\n",
                 "  multiple   spaces\tand tabs\n\n", "émojis 🙂 and 中文 text", "<|im_start|>user\nhi<|im_end|>"]
    mismatched = total = 0
    for line in lines:
        a = reference_tokenizer.encode(line, add_special_tokens=False)
        b = imported_tokenizer.encode(line, add_special_tokens=False)
        total += len(a)
        if a != b:
            mismatched += 1
            if mismatched <= 3:
                print(f"TOKENS differ on {line[:60]!r}: {a[:12]} vs {b[:12]}")
    print(f"tokenizer: {len(lines)} lines, {total} tokens, {mismatched} lines differ")
    failures += mismatched

    prompt = "The capital of France is"
    ids = imported_tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits_reference = reference(ids).logits
        logits_imported = imported(ids).logits
    logits_difference = (logits_reference - logits_imported).abs().max().item()
    print(f"logits on {prompt!r}: max abs difference {logits_difference:.3e}")
    if logits_difference > 1e-4:
        failures += 1
    with torch.no_grad():
        generated = imported.generate(ids, max_new_tokens=16, do_sample=False)
    print("greedy:", repr(imported_tokenizer.decode(generated[0])))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
