#!/usr/bin/env python3
"""Writes GGUF tokenizer metadata as JSON, the object hlwq's GGUF parser yields (test fixture
generator for src/io/gguf_tokenizer.cc).

  tokenizer_gguf_metadata.py hf DIR --pre NAME OUT.json
      Builds the metadata llama.cpp's convert_hf_to_gguf.py would write for the Hugging Face
      tokenizer in DIR: tokenizer.json (+ tokenizer_config.json), or GPT-2's encoder.json +
      vocab.bpe. Byte-level BPE follows its get_vocab_base()/_set_vocab_gpt2(); a
      SentencePiece-style BPE (Llama-2 like, byte_fallback) becomes tokenizer.ggml.model "llama".
      NAME is the tokenizer.ggml.pre value (convert_hf_to_gguf finds it by hashing a test
      encoding; here it is given).
  tokenizer_gguf_metadata.py gguf FILE.gguf OUT.json
      Dumps the tokenizer.* keys (plus general.architecture, general.name, <arch>.context_length) of a GGUF
      file with the `gguf` package's GGUFReader.

A SentencePiece vocabulary converted from tokenizer.model carries each piece's score; from a
tokenizer.json alone there are none, so scores are recovered from the merge order: the token
a merge of rank r produces gets score -r (the highest-ranked merge that produces it), which is
how SentencePiece BPE models score their pieces (earlier merge = higher score). Pieces no merge
produces (characters, bytes, specials) get a score below every merge result.
"""

import argparse
import json
import pathlib
import sys

# llama.cpp's token types (gguf.TokenType).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def looks_special(text):
    """convert_hf_to_gguf's does_token_look_special."""
    return (text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<\uff5c") and text.endswith("\uff5c>"))
            or (text.startswith("<unused") and text.endswith(">")))


def gpt2_tokenizer_json(folder):
    """GPT-2's encoder.json + vocab.bpe as the tokenizer.json Hugging Face ships for it."""
    vocab = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    lines = (folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    merges = [line for line in lines[1:] if line and not line.startswith("#version")]
    return {
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
        "version": "1.0", "truncation": None, "padding": None,
    }


def load_hf(folder):
    """(tokenizer.json as a dict, tokenizer_config.json as a dict)."""
    if (folder / "tokenizer.json").exists():
        tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    else:
        tokenizer = gpt2_tokenizer_json(folder)
    config_path = folder / "tokenizer_config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
    else:
        config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    return tokenizer, config


def merge_strings(merges):
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def special_ids(tokenizer, config, ids):
    """bos/eos/unk/pad ids and add_bos/add_eos as gguf.SpecialVocab reads them."""
    def content(value):
        return value.get("content") if isinstance(value, dict) else value

    metadata = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                      ("pad", "padding_token_id")):
        text = content(config.get(f"{name}_token"))
        if text is not None and text in ids:
            metadata[f"tokenizer.ggml.{key}"] = ids[text]
    processor = tokenizer.get("post_processor") or {}
    if processor.get("type") == "TemplateProcessing":
        single = processor.get("single", [])
        metadata["tokenizer.ggml.add_bos_token"] = bool(single and "SpecialToken" in single[0])
        metadata["tokenizer.ggml.add_eos_token"] = bool(single and "SpecialToken" in single[-1])
    for flag in ("add_bos_token", "add_eos_token"):
        if isinstance(config.get(flag), bool):
            metadata[f"tokenizer.ggml.{flag}"] = config[flag]
    template = config.get("chat_template")
    if isinstance(template, str):
        metadata["tokenizer.chat_template"] = template
    return metadata


def byte_level_metadata(folder, tokenizer, config, pre):
    """convert_hf_to_gguf's get_vocab_base() + _set_vocab_gpt2()."""
    from tokenizers import Tokenizer
    hf = Tokenizer.from_str(json.dumps(tokenizer))
    vocab = dict(tokenizer["model"]["vocab"])
    added = {token["content"]: token for token in tokenizer["added_tokens"]}
    for token in tokenizer["added_tokens"]:
        vocab[token["content"]] = token["id"]
    by_id = {index: text for text, index in vocab.items()}
    tokens, types = [], []
    for index in range(max(by_id) + 1):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(UNUSED)
            continue
        text = by_id[index]
        if text in added:
            if not added[text]["normalized"]:
                text = hf.decode(hf.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)
            types.append(CONTROL if added[by_id[index]]["special"] or looks_special(text) else USER_DEFINED)
        else:
            types.append(NORMAL)
        tokens.append(text)
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merge_strings(tokenizer["model"]["merges"]),
    }
    metadata.update(special_ids(tokenizer, config, vocab))
    return metadata


def sentencepiece_metadata(tokenizer, config):
    """A SentencePiece BPE as _create_vocab_sentencepiece() would write it from tokenizer.model."""
    vocab = tokenizer["model"]["vocab"]
    by_id = {index: text for text, index in vocab.items()}
    merges = merge_strings(tokenizer["model"]["merges"])
    first_rank = {}
    for rank, merge in enumerate(merges):
        first_rank.setdefault(merge.replace(" ", "", 1), rank)
    specials = {token["content"]: token for token in tokenizer["added_tokens"]}
    unknown = tokenizer["model"].get("unk_token")
    tokens, scores, types = [], [], []
    for index in range(len(by_id)):
        text = by_id[index]
        if text == unknown:
            kind, score = UNKNOWN, 0.0
        elif text in specials:
            kind, score = CONTROL, 0.0
        elif len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            kind, score = BYTE, 0.0
        else:
            kind = NORMAL
            score = -float(first_rank.get(text, len(merges) + index))
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    metadata = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
    }
    metadata.update(special_ids(tokenizer, config, vocab))
    return metadata


def from_hf(folder, pre):
    tokenizer, config = load_hf(folder)
    if tokenizer["model"].get("byte_fallback"):
        return sentencepiece_metadata(tokenizer, config)
    return byte_level_metadata(folder, tokenizer, config, pre)


def from_gguf(path):
    from gguf import GGUFReader, GGUFValueType
    reader = GGUFReader(path)

    def value(field):
        if field.types[0] == GGUFValueType.ARRAY and field.types[-1] == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        if field.types[0] == GGUFValueType.STRING:
            return bytes(field.parts[field.data[0]]).decode("utf-8")
        contents = field.contents()
        return contents

    metadata = {}
    architecture = None
    if "general.architecture" in reader.fields:
        architecture = value(reader.fields["general.architecture"])
        metadata["general.architecture"] = architecture
    for name, field in reader.fields.items():
        if name.startswith("tokenizer.") or name in ("general.name", f"{architecture}.context_length"):
            metadata[name] = value(field)
    return metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    hf = commands.add_parser("hf")
    hf.add_argument("folder", type=pathlib.Path)
    hf.add_argument("--pre", default="default")
    hf.add_argument("output", type=pathlib.Path)
    gguf = commands.add_parser("gguf")
    gguf.add_argument("file", type=pathlib.Path)
    gguf.add_argument("output", type=pathlib.Path)
    args = parser.parse_args()
    if args.command == "hf":
        metadata = from_hf(args.folder, args.pre)
    else:
        metadata = from_gguf(args.file)
    args.output.write_text(json.dumps(metadata, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
