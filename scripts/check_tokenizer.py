#!/usr/bin/env python3
"""Checks that a tokenizer.json hlwq rebuilt from GGUF metadata gives the ids it should.

  check_tokenizer.py compare OURS REFERENCE --text FILE
      OURS: a folder with tokenizer.json. REFERENCE: a Hugging Face tokenizer folder
      (tokenizer.json, or GPT-2's encoder.json + vocab.bpe). Both tokenize every line of FILE,
      FILE as one string (or its first --whole-bytes bytes), and a list of hard strings,
      without special tokens added; any difference fails.
  check_tokenizer.py fixture OURS FIXTURE.json.xz --text FILE [--transformers]
      Compares OURS with llama.cpp's ids stored in FIXTURE (made by make-fixture); with
      --transformers also checks that transformers' AutoTokenizer loads OURS and agrees.
  check_tokenizer.py live OURS MODEL.gguf --text FILE [--text-bytes N]
      The same comparison with llama.cpp run now (needs llama-cpp-python).
  check_tokenizer.py make-fixture MODEL.gguf FIXTURE.json.xz --text FILE [--text-bytes N]
      Tokenizes with llama.cpp (the llama-cpp-python package, vocab only) and stores the ids:
      the first N bytes of FILE (all by default) as one string, each of its first lines, and the
      hard strings with and without special-token parsing.

Exit status: 0 identical, 1 a difference (the first ones are printed), 2 a missing input.
"""

import argparse
import base64
import hashlib
import json
import lzma
import pathlib
import struct
import sys

# Text that splits or merges differently when a pre-tokenizer, a merge order or special-token
# handling is off. All are in NFC (Qwen's own tokenizer normalizes to NFC, llama.cpp does not).
HARD_STRINGS = [
    "", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", " \n", "\n \n\n", "\r\n", "a\r\nb",
    "Hello world", " Hello world", "Hello  world", "hello\tworld", "trailing spaces   ", "   leading",
    "1234567", "3.14159", "1,000,000", "12 345 6789", "\u0663\u0664\u0665 \u0666\u0667",
    "I've been told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like tea? We'Ve a'lL",
    "don't DON'T", "\u00dcn\u00efc\u00f6d\u00e9 fa\u00e7ade na\u00efve", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0939\u093f\u0928\u094d\u0926\u0940", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u4e2d\u6587\u6d4b\u8bd5\uff1a\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f",
    "\U0001f999\U0001f999 llama", "\U0001f636\u200d\U0001f32b\ufe0f (emoji zwj)", "\U0001f44d\U0001f3fd",
    "\U0001f1ef\U0001f1f5", "\U0001f680 (normal) \u2705",
    "def f(x):\n    return x**2  # square\n", "if (a && b) { c[i] = d->e; }\n\tgoto end;",
    "<html><body class=\"x\">hi</body></html>", "~~~ ----- ===== ...... !!!!!! ??????",
    "''''''```````\"\"\"\"", "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "<s> hello </s>",
    "<|begin_of_text|>x<|eot_id|>", "<think>\nreasoning\n</think>\n\nanswer", "<unk>", "<0x41>",
    "\u00a0nbsp\u00a0", "zero\u200bwidth", "\ufb01 ligature", "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48",
    "x" * 300, " " * 50 + "x", "a\n\n\n\nb", "\t\tindent\n\t\t\tmore", "mixed123abc456 ID: A1B2C3",
    "email@example.com https://example.com/path?q=1&r=2#frag", "tab\tand\u3000ideographic space",
    "\x01\x7f controls", "   \n   \n", "end with newline\n",
    # Whitespace next to special tokens (some models strip it, llama.cpp by model name).
    "<|user|>\n  Hi there  <|end|>\n<|assistant|> ok", "x </s> y  </s>\n z", "<|endoftext|>  z <s>  w",
    "<|im_end|> \n next", "[PAD32011] x",
]
# Not in NFC: compared with llama.cpp only.
LLAMA_CPP_ONLY_STRINGS = ["e\u0301 combining acute", "\u212b angstrom sign"]
FIXTURE_LINES = 600  # lines of the text file stored one by one (the whole prefix is stored too)


def load_tokenizer(folder):
    from tokenizers import Tokenizer
    folder = pathlib.Path(folder)
    if folder.is_file():
        return Tokenizer.from_file(str(folder))
    if (folder / "tokenizer.json").exists():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from tokenizer_gguf_metadata import gpt2_tokenizer_json
    return Tokenizer.from_str(json.dumps(gpt2_tokenizer_json(folder)))


def encode_all(tokenizer, texts):
    return [encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]


def report_differences(label, texts, ours, expected, limit=5):
    """Prints the first differences; returns the number of texts that differ."""
    bad = [i for i in range(len(texts)) if ours[i] != expected[i]]
    for i in bad[:limit]:
        first = next((k for k, (a, b) in enumerate(zip(ours[i], expected[i])) if a != b),
                     min(len(ours[i]), len(expected[i])))
        print(f"{label}: text {i} {texts[i][:80]!r} differs at token {first}: "
              f"ours {ours[i][first:first + 8]} expected {expected[i][first:first + 8]}")
    return len(bad)


def added_contents(tokenizer):
    return {token.content for token in tokenizer.get_added_tokens_decoder().values()}


def compare(args):
    ours = load_tokenizer(args.ours)
    reference = load_tokenizer(args.reference)
    text = pathlib.Path(args.text).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    whole = text.encode("utf-8")[:args.whole_bytes].decode("utf-8", errors="ignore") if args.whole_bytes else text
    # llama.cpp matches some texts as special tokens although the original tokenizer does not
    # (it forces e.g. "</s>" and "<|endoftext|>" to be control tokens); strings holding them
    # cannot agree with the original and are left out, by name.
    extra = sorted(added_contents(ours) - added_contents(reference))
    hard = [s for s in HARD_STRINGS if not any(token in s for token in extra)]
    if len(hard) != len(HARD_STRINGS):
        print(f"left out {len(HARD_STRINGS) - len(hard)} hard strings holding tokens only llama.cpp "
              f"treats as special: {extra}")
    failures = 0
    counts = {}
    for label, texts in (("lines", lines), ("whole text", [whole]), ("hard strings", hard)):
        mine = encode_all(ours, texts)
        theirs = encode_all(reference, texts)
        failures += report_differences(label, texts, mine, theirs)
        counts[label] = (len(texts), sum(len(ids) for ids in theirs))
    summary = ", ".join(f"{label}: {n} texts / {tokens} tokens" for label, (n, tokens) in counts.items())
    print(f"{'IDENTICAL' if failures == 0 else 'DIFFERENT'} ({summary})")
    return 0 if failures == 0 else 1


def pack_ids(ids):
    return base64.b64encode(struct.pack(f"<{len(ids)}I", *ids)).decode("ascii")


def unpack_ids(text):
    data = base64.b64decode(text)
    return list(struct.unpack(f"<{len(data) // 4}I", data))


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def fixture_texts(text_path, text_bytes):
    data = pathlib.Path(text_path).read_bytes()
    if text_bytes:
        data = data[:text_bytes]
    text = data.decode("utf-8", errors="strict")
    return text, text.splitlines(keepends=True)[:FIXTURE_LINES]


def llama_cpp_reference(model_path, text_path, text_bytes):
    """llama.cpp's ids (llama-cpp-python, vocab only) for the fixture texts, as a fixture dict."""
    from llama_cpp import Llama
    model = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    text, lines = fixture_texts(text_path, text_bytes)

    def tokenize(string, special, add_bos=False):
        return model.tokenize(string.encode("utf-8"), add_bos=add_bos, special=special)

    strings = HARD_STRINGS + LLAMA_CPP_ONLY_STRINGS
    return {
        "generator": "scripts/check_tokenizer.py make-fixture (llama-cpp-python, vocab_only)",
        "model": pathlib.Path(model_path).name,
        "model_sha256": sha256(model_path),
        "text_file": pathlib.Path(text_path).name,
        "text_sha256": sha256(text_path),
        "text_bytes": len(text.encode("utf-8")),
        "whole_text_ids": pack_ids(tokenize(text, special=True)),
        "line_ids": [pack_ids(tokenize(line, special=True)) for line in lines],
        "strings": [{"text": s, "special": special, "ids": tokenize(s, special)}
                    for s in strings for special in (True, False)],
        "with_bos": {"text": "Hello world", "ids": tokenize("Hello world", True, add_bos=True)},
    }


def make_fixture(args):
    fixture = llama_cpp_reference(args.model, args.text, args.text_bytes)
    with lzma.open(args.fixture, "wt", encoding="utf-8", preset=9) as file:
        json.dump(fixture, file, ensure_ascii=False)
    print(f"wrote {args.fixture}: {len(unpack_ids(fixture['whole_text_ids']))} tokens for "
          f"{fixture['text_bytes']} bytes, {len(fixture['line_ids'])} lines, {len(fixture['strings'])} strings")
    return 0


def check_against(fixture, ours_path, text_path):
    """Compares the tokenizer in ours_path with llama.cpp's ids in `fixture`."""
    if sha256(text_path) != fixture["text_sha256"]:
        print(f"{text_path} is not the text the fixture was made from")
        return 2
    ours = load_tokenizer(ours_path)
    text, lines = fixture_texts(text_path, fixture["text_bytes"])
    failures = 0
    whole = unpack_ids(fixture["whole_text_ids"])
    failures += report_differences("whole text", [text], encode_all(ours, [text]), [whole])
    expected_lines = [unpack_ids(ids) for ids in fixture["line_ids"]]
    failures += report_differences("lines", lines, encode_all(ours, lines), expected_lines)
    # llama.cpp without special-token parsing ~ HF with special added tokens treated as text.
    for special in (True, False):
        entries = [entry for entry in fixture["strings"] if entry["special"] == special]
        ours.encode_special_tokens = not special
        mine = encode_all(ours, [entry["text"] for entry in entries])
        failures += report_differences(f"strings (special={special})", [e["text"] for e in entries],
                                       mine, [e["ids"] for e in entries])
    ours.encode_special_tokens = False
    with_bos = fixture["with_bos"]
    failures += report_differences("with BOS", [with_bos["text"]],
                                   [ours.encode(with_bos["text"], add_special_tokens=True).ids],
                                   [with_bos["ids"]])
    line_tokens = sum(len(ids) for ids in expected_lines)
    print(f"{'IDENTICAL' if failures == 0 else 'DIFFERENT'} (llama.cpp {fixture['model']}: "
          f"whole text {fixture['text_bytes']} bytes / {len(whole)} tokens, {len(lines)} lines / "
          f"{line_tokens} tokens, {len(fixture['strings'])} strings)")
    return 0 if failures == 0 else 1


def check_transformers(ours_path):
    """transformers' AutoTokenizer must load the folder (tokenizer_config.json included) and
    give the ids `tokenizers` gives; the chat template must render."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("transformers is not installed; AutoTokenizer not checked")
        return 0
    auto = AutoTokenizer.from_pretrained(str(ours_path))
    raw = load_tokenizer(ours_path)
    failures = 0
    for add_special in (False, True):
        mine = [auto(s, add_special_tokens=add_special)["input_ids"] for s in HARD_STRINGS]
        expected = [e.ids for e in raw.encode_batch(HARD_STRINGS, add_special_tokens=add_special)]
        failures += report_differences(f"AutoTokenizer (add_special_tokens={add_special})", HARD_STRINGS,
                                       mine, expected)
    if auto.chat_template:
        rendered = auto.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                            add_generation_prompt=True)
        if "Hi" not in rendered:
            print(f"chat template rendered {rendered!r}")
            failures += 1
    print(f"AutoTokenizer ({type(auto).__name__}): {'same ids' if failures == 0 else 'DIFFERENT'}, "
          f"bos {auto.bos_token!r} eos {auto.eos_token!r} pad {auto.pad_token!r}")
    return failures


def check_fixture(args):
    with lzma.open(args.fixture, "rt", encoding="utf-8") as file:
        fixture = json.load(file)
    status = check_against(fixture, args.ours, args.text)
    if status == 0 and args.transformers and check_transformers(args.ours) != 0:
        status = 1
    return status


def check_live(args):
    return check_against(llama_cpp_reference(args.model, args.text, args.text_bytes), args.ours, args.text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("compare")
    command.add_argument("ours")
    command.add_argument("reference")
    command.add_argument("--text", required=True)
    command.add_argument("--whole-bytes", type=int, default=0,
                         help="tokenize only this many bytes of the text as one string (default: all)")
    command = commands.add_parser("fixture")
    command.add_argument("ours")
    command.add_argument("fixture")
    command.add_argument("--text", required=True)
    command.add_argument("--transformers", action="store_true",
                         help="also load OURS with transformers' AutoTokenizer and compare")
    command = commands.add_parser("live")
    command.add_argument("ours")
    command.add_argument("model")
    command.add_argument("--text", required=True)
    command.add_argument("--text-bytes", type=int, default=0)
    command = commands.add_parser("make-fixture")
    command.add_argument("model")
    command.add_argument("fixture")
    command.add_argument("--text", required=True)
    command.add_argument("--transformers", action="store_true",
                         help="also load OURS with transformers' AutoTokenizer and compare")
    command.add_argument("--text-bytes", type=int, default=0)
    args = parser.parse_args()
    inputs = {"compare": ("reference",), "fixture": ("fixture",), "live": ("model",), "make-fixture": ("model",)}
    for path in [getattr(args, name) for name in inputs[args.command] + ("text",)]:
        if not pathlib.Path(path).exists():
            print(f"missing {path}")
            return 2
    commands = {"compare": compare, "fixture": check_fixture, "live": check_live, "make-fixture": make_fixture}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
