#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/qwen35_llama_cpp_ids.json.xz: llama.cpp's ids for the Qwen3.5
vocabulary of llama.cpp's tokenizer suite (ggml-vocab-qwen35.gguf, scripts/fetch_llama_cpp_vocab_suite.sh).

  python3 scripts/make_qwen35_tokenizer_fixture.py [--model models/llama-cpp-vocab/ggml-vocab-qwen35.gguf]
      [--text ../shared/data/wikitext-2-raw/wiki.test.raw] [--out tests/fixtures/tokenizer/qwen35_llama_cpp_ids.json.xz]

llama.cpp runs through the llama_cpp Python package (vocab only, special tokens parsed, no BOS).
The package is not built with pip here: the llama-cpp-python sdist the fetch script names holds
llama.cpp under vendor/llama.cpp; build only its library there and put it beside the package:
  cmake -S vendor/llama.cpp -B build -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF
  cmake --build build --target llama && cp build/bin/lib*.so* llama_cpp/lib/
  PYTHONPATH=<sdist folder> python3 scripts/make_qwen35_tokenizer_fixture.py
(llama_cpp imports diskcache, jinja2 and numpy.)

Stored, for the WikiText-2 test split: the whole file as one string (id count and FNV-1a 64 of the
ids as little-endian uint32), every line on its own (the same two numbers over all lines' ids in
order), the ids of its first PREFIX_BYTES bytes (cut after a newline) in full; and the ids of the
hard strings of scripts/check_tokenizer.py plus the strings below.
"""
import argparse
import hashlib
import json
import lzma
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_tokenizer import HARD_STRINGS, LLAMA_CPP_ONLY_STRINGS  # noqa: E402

PREFIX_BYTES = 50_000

# Where Qwen3.5's regex differs from Qwen2's ([\p{L}\p{M}]+ words, marks outside punctuation runs)
# and where splitting is easy to get wrong.
QWEN35_STRINGS = [
    "I'M", "you'Ve", "THEY'RE we'LL she'D it'S don'T", "I'm You're He'd", "'s 'S 's' ''s", "it'\u017f",
    "e\u0301\u0302 stacked marks", "\u0301leading mark", "x \u0301 y", "!\u0301?", "'\u0301s",
    "A\u030a \u212b \u00c5", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324 zalgo",
    "\u0915\u094d\u0937\u093f \u0939\u093f\u0928\u094d\u0926\u0940", "\u0e01\u0e34\u0e19\u0e02\u0e49\u0e32\u0e27",
    "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "\u0531\u0580\u0574\u0565\u0576", "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd",
    "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd", "\u0645\u064f\u062d\u064e\u0645\u0651\u064e\u062f",
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2", "\u65e5\u672c\u8a9e\u3001\u4e2d\u6587\u3002\ud55c\uad6d\uc5b4",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family", "\U0001f3f3\ufe0f\u200d\U0001f308",
    "1\ufe0f\u20e3 keycap", "\U0001f44b\U0001f3fb\U0001f44b\U0001f3ff", "\u2764\ufe0f\u200d\U0001f525",
    "12345678901234567890", "3.14159265358979", "1,234,567.89", "\u0661\u0662\u0663\u0664\u0665",
    "\uff11\uff12\uff13 fullwidth", "\u2460\u2461 \u00bd \u00b2 \u2167", "v1.2.3-rc4",
    "a     b", "\t \t \t", "\n\n\n\n", "\r\n\r\n", " \n \n ", "x\u3000\u3000y", "\u00a0\u00a0", "word   ",
    "  \n\n  indented\n\tline\r\n", "end\n", "\u2028\u2029 separators", "\u0085next line",
]


def fnv1a64(ids):
    value = 0xCBF29CE484222325
    for token in ids:
        for byte in int(token).to_bytes(4, "little"):
            value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "llama-cpp-vocab" / "ggml-vocab-qwen35.gguf"))
    parser.add_argument("--text", default=str(ROOT.parent / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw"))
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "tokenizer" / "qwen35_llama_cpp_ids.json.xz"))
    args = parser.parse_args()

    from llama_cpp import Llama
    model = Llama(model_path=args.model, vocab_only=True, verbose=False)

    def tokenize(text):
        return model.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    data = pathlib.Path(args.text).read_bytes()
    text = data.decode("utf-8")
    whole = tokenize(text)
    lines = text.splitlines(keepends=True)
    line_ids = [token for line in lines for token in tokenize(line)]
    prefix = data[:PREFIX_BYTES]
    prefix = prefix[:prefix.rfind(b"\n") + 1].decode("utf-8")
    strings = HARD_STRINGS + LLAMA_CPP_ONLY_STRINGS + QWEN35_STRINGS
    fixture = {
        "generator": "scripts/make_qwen35_tokenizer_fixture.py (llama.cpp of llama-cpp-python 0.3.36, vocab only)",
        "model": pathlib.Path(args.model).name,
        "model_sha256": hashlib.sha256(pathlib.Path(args.model).read_bytes()).hexdigest(),
        "text_sha256": hashlib.sha256(data).hexdigest(),
        "text_bytes": len(data),
        "whole_count": len(whole),
        "whole_fnv1a64": fnv1a64(whole),
        "line_count": len(lines),
        "lines_token_count": len(line_ids),
        "lines_fnv1a64": fnv1a64(line_ids),
        "prefix_bytes": len(prefix.encode("utf-8")),
        "prefix_ids": tokenize(prefix),
        "strings": [{"text": s, "ids": tokenize(s)} for s in strings],
    }
    with lzma.open(args.out, "wt", encoding="utf-8", preset=9) as file:
        json.dump(fixture, file, ensure_ascii=False)
    print(f"wrote {args.out}: whole text {len(whole)} tokens, {len(lines)} lines / {len(line_ids)} tokens, "
          f"{len(strings)} strings")


if __name__ == "__main__":
    main()
