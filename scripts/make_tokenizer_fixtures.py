#!/usr/bin/env python3
"""Writes the reference ids and chat prompts the tokenizer tests compare against.

  python3 scripts/make_tokenizer_fixtures.py [--data ../shared/data] [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                             [--chat-only]

For each tokenizer in DATA/tokenizers (qwen3, llama3, llama2: tokenizer.json; gpt2: encoder.json +
vocab.bpe, built the way GPT2TokenizerFast builds it), Hugging Face `tokenizers` encodes, without
special tokens added:
  - the whole WikiText-2 test split as one string: stored as the id count and the FNV-1a 64-bit hash of
    the ids as little-endian uint32 (the full list would pass 1 MB),
  - its first PREFIX_BYTES bytes (cut after a newline): stored in full,
  - the hard strings of scripts/check_tokenizer.py, with their decoded text.
Output: tests/fixtures/tokenizer/<name>_ids.json.xz. Also tests/fixtures/tokenizer/chat_templates.json:
transformers' apply_chat_template(tokenize=False) on a few conversations for the qwen3 and
llama3 templates and for the demo GGUF's (SmolLM2) template. And
tests/fixtures/tokenizer/llama31_chat_templates.json: the same for the Llama-3.1 and Llama-3.2 templates
written out below (the shared Llama-3 tokenizer carries the 3.0 template), with the llama3 tokenizer's
bos_token; Llama-3.2's template stamps the day it is rendered, which is stored as "today".
--chat-only writes the two chat fixtures alone.
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


# Meta's Llama-3.1 Instruct chat template (tokenizer_config.json of Llama-3.1-8B-Instruct): a system
# header with the knowledge cut-off and a fixed "Today Date", then the Llama-3 turns; tools optional.
LLAMA31_TEMPLATE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Llama-3.2 (1B/3B Instruct) takes today's date, through transformers' strftime_now; its other change
# (no builtin_tools) does not show in conversations without tools.
LLAMA32_TEMPLATE = LLAMA31_TEMPLATE.replace(
    """    {%- set date_string = "26 Jul 2024" %}""",
    """    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}""")

LLAMA31_CONVERSATIONS = CONVERSATIONS + [
    [{"role": "system", "content": "  Answer in French.\n"}, {"role": "user", "content": "Good morning"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Empty system"}],
    [{"role": "assistant", "content": "I speak first."}, {"role": "user", "content": "Fine."}],
    [{"role": "user", "content": "Rules?"}, {"role": "system", "content": "Late system message"},
     {"role": "user", "content": "Go on"}],
    [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Checking."},
     {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}\nline two \\ tab\t\u00e9 \u0001"},
     {"role": "ipython", "content": "  42  "}],
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


def make_llama31_chat(data):
    """Llama-3.1/3.2 prompts; the templates are stored with them, the tests load them from here."""
    from datetime import datetime

    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(data / "tokenizers" / "llama3"))
    today = datetime.now().strftime("%d %b %Y")
    entries = []
    for name, template in (("llama31", LLAMA31_TEMPLATE), ("llama32", LLAMA32_TEMPLATE)):
        for messages in LLAMA31_CONVERSATIONS:
            for generation in (False, True):
                text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation,
                                                     chat_template=template)
                if datetime.now().strftime("%d %b %Y") != today:
                    raise SystemExit("the day changed while rendering; run again")
                entries.append({"template": name, "messages": messages, "add_generation_prompt": generation,
                                "expected": text})
    fixture = {"bos_token": tokenizer.bos_token, "today": today,
               "templates": {"llama31": LLAMA31_TEMPLATE, "llama32": LLAMA32_TEMPLATE}, "cases": entries}
    path = OUT / "llama31_chat_templates.json"
    path.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"{path.name}: {len(entries)} prompts")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--gguf", type=pathlib.Path, default=ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--chat-only", action="store_true", help="write the chat template fixtures alone")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.chat_only:
        for name in ("qwen3", "llama3", "llama2", "gpt2"):
            make_ids(name, args.data)
    make_chat(args.data, args.gguf)
    make_llama31_chat(args.data)


if __name__ == "__main__":
    main()
