#!/usr/bin/env python3
"""Writes the reference ids and chat prompts the tokenizer tests compare against.

  python3 scripts/make_tokenizer_fixtures.py [--data ../shared/data] [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]

For each tokenizer in DATA/tokenizers (qwen3, llama3, llama2: tokenizer.json; gpt2: encoder.json +
vocab.bpe, built the way GPT2TokenizerFast builds it), Hugging Face `tokenizers` encodes, without
special tokens added:
  - the whole WikiText-2 test split as one string: stored as the id count and the FNV-1a 64-bit hash of
    the ids as little-endian uint32 (the full list would pass 1 MB),
  - its first PREFIX_BYTES bytes (cut after a newline): stored in full,
  - the hard strings of scripts/check_tokenizer.py, with their decoded text.
Output: tests/fixtures/tokenizer/<name>_ids.json.xz. Also tests/fixtures/tokenizer/chat_templates.json:
transformers' apply_chat_template(tokenize=False) on a few conversations for the qwen3 and
llama3 templates and for the demo GGUF's (SmolLM2) template.
"""
import argparse
import json
import lzma
import pathlib
import struct
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_tokenizer import HARD_STRINGS, LLAMA_CPP_ONLY_STRINGS  # noqa: E402

PREFIX_BYTES = 50_000
OUT = ROOT / "tests" / "fixtures" / "tokenizer"

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}],
    [{"role": "user", "content": "  padded  \n"}, {"role": "assistant", "content": "\nreply with spaces "}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello there"},
     {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "<think>\nok, leaving\n</think>\n\nGoodbye"}],
    [{"role": "user", "content": "Ünïcödé 日本語 🦙"}],
]


def load(name, data):
    folder = data / "tokenizers" / name
    if (folder / "tokenizer.json").exists():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    vocab, merges = models.BPE.read_file(str(folder / "encoder.json"), str(folder / "vocab.bpe"))
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(["<|endoftext|>"])
    return tokenizer


def ids_fnv1a64(ids):
    """FNV-1a (64-bit) of the ids as little-endian uint32: a check any C++ test can recompute."""
    value = 0xCBF29CE484222325
    for byte in struct.pack(f"<{len(ids)}I", *ids):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def make_ids(name, data):
    tokenizer = load(name, data)
    text = (data / "wikitext-2-raw" / "wiki.test.raw").read_bytes().decode("utf-8")
    whole = tokenizer.encode(text, add_special_tokens=False).ids
    raw = text.encode("utf-8")
    cut = raw.index(b"\n", PREFIX_BYTES) + 1
    prefix = tokenizer.encode(raw[:cut].decode("utf-8"), add_special_tokens=False).ids
    strings = []
    for string in HARD_STRINGS + LLAMA_CPP_ONLY_STRINGS:
        ids = tokenizer.encode(string, add_special_tokens=False).ids
        strings.append({"text": string, "ids": ids, "decoded": tokenizer.decode(ids, skip_special_tokens=False)})
    fixture = {
        "generator": f"scripts/make_tokenizer_fixtures.py (tokenizers {__import__('tokenizers').__version__})",
        "text_bytes": len(raw),
        "whole_count": len(whole),
        "whole_fnv1a64": ids_fnv1a64(whole),
        "prefix_bytes": cut,
        "prefix_ids": prefix,
        "strings": strings,
        "with_special": tokenizer.encode("Hello world", add_special_tokens=True).ids,
    }
    path = OUT / f"{name}_ids.json.xz"
    path.write_bytes(lzma.compress(json.dumps(fixture, ensure_ascii=False).encode("utf-8")))
    print(f"{path.name}: {len(whole)} tokens for {len(raw)} bytes, {path.stat().st_size} bytes")


def make_chat(data, gguf_path):
    from transformers import AutoTokenizer
    entries = []
    templates = {}
    for name in ("qwen3", "llama3"):
        templates[name] = (AutoTokenizer.from_pretrained(str(data / "tokenizers" / name)), None)
    if gguf_path and gguf_path.exists():
        import gguf
        field = gguf.GGUFReader(str(gguf_path)).fields["tokenizer.chat_template"]
        templates["smollm2"] = (templates["qwen3"][0], bytes(field.parts[field.data[0]]).decode("utf-8"))
    for name, (tokenizer, template) in templates.items():
        for messages in CONVERSATIONS:
            for generation in (False, True):
                text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation,
                                                     chat_template=template)
                entries.append({"tokenizer": name, "messages": messages, "add_generation_prompt": generation,
                                "expected": text})
    path = OUT / "chat_templates.json"
    path.write_text(json.dumps(entries, ensure_ascii=False, indent=1) + "\n")
    print(f"{path.name}: {len(entries)} prompts")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--gguf", type=pathlib.Path, default=ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("qwen3", "llama3", "llama2", "gpt2"):
        make_ids(name, args.data)
    make_chat(args.data, args.gguf)


if __name__ == "__main__":
    main()
