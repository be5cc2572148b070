#!/usr/bin/env python3
"""Regenerates the small seed inputs in fuzz/corpus/tokenizer/ for fuzz/tokenizer_fuzz.cc.

  python3 scripts/tokenizer_fuzz_seeds.py [FOLDER]

Two kinds of seeds, since the target reads every input both ways:
  - tiny tokenizer.json files written here (no third-party tokenizer copied), one per feature the
    loader has: byte-level BPE with the GPT-2, Llama-3 and Qwen2 split patterns, digit splitting,
    NFC / Prepend / Replace normalizers, SentencePiece-style byte fallback, unk and fuse_unk,
    merges as strings and as pairs, ignore_merges, added tokens with lstrip / rstrip / single_word,
    a TemplateProcessing BOS, and a "config" member with bos/eos and chat templates;
  - texts: ASCII with contractions, several scripts and emoji, special-token text, mixed
    whitespace, digits, and invalid UTF-8.
"""
import json
import os
import sys

GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
                   " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>"
                   "\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


def byte_alphabet():
    """GPT-2's byte -> character map: printable bytes stand for themselves, the rest for U+0100 on."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table, shifted = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def byte_level_model(words, merges_as_pairs=False):
    """Every byte plus the merges that build `words` left to right."""
    alphabet = byte_alphabet()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = []
    for word in words:
        spelled = "".join(alphabet[b] for b in word.encode("utf-8"))
        current = spelled[0]
        for character in spelled[1:]:
            if current + character not in vocab:
                vocab[current + character] = len(vocab)
                merges.append([current, character] if merges_as_pairs else f"{current} {character}")
            current += character
    return {"type": "BPE", "vocab": vocab, "merges": merges}


def added(content, token_id, **flags):
    return {"id": token_id, "content": content, "special": True, "lstrip": flags.get("lstrip", False),
            "rstrip": flags.get("rstrip", False), "single_word": flags.get("single_word", False),
            "normalized": False}


def byte_level_tokenizer(split, words, specials, merges_as_pairs=False, normalizer=None, config=None):
    model = byte_level_model(words, merges_as_pairs)
    first_added = len(model["vocab"])
    pre_tokenizer = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": split is None}
    if split is not None:
        pre_tokenizer = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    tokenizer = {
        "version": "1.0",
        "added_tokens": [added(text, first_added + i, **flags) for i, (text, flags) in enumerate(specials)],
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": model,
    }
    if config is not None:
        tokenizer["config"] = config
    return tokenizer


def sentencepiece_tokenizer():
    """Llama-2 style: pieces with U+2581 for spaces, <0xNN> byte fallback, a Strip decoder."""
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    words = ["\u2581the", "\u2581a", "\u2581to", "ing", "\u2581token", "er"]
    characters = sorted({c for word in words for c in word})
    pieces += characters
    merges = []
    for word in words:
        current = word[0]
        for character in word[1:]:
            if current + character not in pieces:
                pieces.append(current + character)
                merges.append([current, character])
            current += character
    return {
        "version": "1.0",
        "added_tokens": [added("<unk>", 0), added("<s>", 1), added("</s>", 2)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing", "single": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "ignore_merges": False, "vocab": {piece: i for i, piece in enumerate(pieces)}, "merges": merges},
    }


WORDS = [" the", "the", " token", " is", "ing", " 2024", "'s", " naïve"]

TEXTS = {
    "text_ascii.txt": "It's the token's test: we'll see 12345 tokens, don't we?\n\tTabs  and   spaces \r\n",
    "text_scripts.txt": "naïve café — 日本語のテキスト, Ελληνικά, русский, العربية, हिन्दी 🦙🧪 e\u0301\n",
    "text_specials.txt": "<|endoftext|>Hi<|im_start|>user\nyo<|im_end|> <|begin_of_text|> <s>x</s>",
    "text_digits.txt": "3.14159 2024-07-26 ١٢٣ ⅷ 1,000,000\n\n\n  ",
}


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus",
                                                                "tokenizer")
    os.makedirs(folder, exist_ok=True)
    seeds = {
        "gpt2_style.json": byte_level_tokenizer(None, WORDS, [("<|endoftext|>", {})],
                                                config={"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}),
        "llama3_style.json": byte_level_tokenizer(
            LLAMA3_SPLIT, WORDS, [("<|begin_of_text|>", {}), ("<|eot_id|>", {}), ("<|start_header_id|>", {}),
                                  ("<|end_header_id|>", {}), ("<mask>", {"lstrip": True, "single_word": True})],
            merges_as_pairs=True,
            config={"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"},
                    "add_bos_token": True, "chat_template": LLAMA3_TEMPLATE}),
        "qwen_style.json": byte_level_tokenizer(
            QWEN2_SPLIT, WORDS, [("<|im_start|>", {}), ("<|im_end|>", {"rstrip": True}), ("<|endoftext|>", {})],
            normalizer={"type": "NFC"},
            config={"eos_token": "<|im_end|>", "chat_template": [{"name": "default", "template": CHATML_TEMPLATE}]}),
        "digits_style.json": {**byte_level_tokenizer(GPT2_SPLIT, WORDS, []),
                              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                                  {"type": "Digits", "individual_digits": True},
                                  {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}},
        "sentencepiece_style.json": sentencepiece_tokenizer(),
    }
    for name, tokenizer in seeds.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
            json.dump(tokenizer, out, ensure_ascii=False, separators=(",", ":"))
    for name, text in TEXTS.items():
        with open(os.path.join(folder, name), "wb") as out:
            out.write(text.encode("utf-8"))
    with open(os.path.join(folder, "text_invalid_utf8.bin"), "wb") as out:
        out.write(b"ok \xff\xfe cut \xe6\x97 over \xc0\xaf surrogate \xed\xa0\x80 end \xf0\x9f\xa6")
    for name in sorted(os.listdir(folder)):
        print(f"{name}: {os.path.getsize(os.path.join(folder, name))} bytes")


if __name__ == "__main__":
    main()
