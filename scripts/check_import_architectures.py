#!/usr/bin/env python3
"""Checks `hlwq import` on tiny GGUFs of every supported architecture (llama, qwen2, qwen3).

For each case of scripts/make_tiny_gguf.py: write the GGUF, run `hlwq import X.gguf -o DIR --dtype f32`,
and check the imported folder against
  1. the truth: the HF config and weights the GGUF was written from. The config values that shape
     the model must agree; transformers must load the
     folder with no missing / unexpected / mismatched keys, every tensor must be identical, and the
     logits on a few token ids must match those of the true model (GGUF stores rms_norm_eps as
     float32, so they agree to ~1e-6 rather than bit for bit);
  2. transformers' own GGUF loader (from_pretrained(dir, gguf_file=...)): for cases it handles,
     identical state dict and logits; for the others (the case says why), its result is printed;
  3. the tokenizer: transformers' GGUF tokenizer and the imported tokenizer.json give the same ids;
  4. mlx_lm (when installed): load_model(DIR) gives logits within 1e-3 of the true model's.
Prints one line per case and check, and exits non-zero on any failure.

Usage: check_import_architectures.py [--hlwq build/hlwq] [CASE ...]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_tiny_gguf  # noqa: E402

LOGIT_TOLERANCE_TRUTH = 1e-4  # float32 rounding of rms_norm_eps in the GGUF; observed ~1e-6
LOGIT_TOLERANCE_MLX = 1e-3
TOKENIZER_TEXTS = ["Hello world! The quick brown fox jumps over 12345 lazy dogs.",
                   "  two  spaces\tand a tab\n\nthe end", "<|im_start|>user\nhi there<|im_end|>", "caf\u00e9 \u00fcber"]


def quietly(function, *args, **kwargs):
    """Runs a transformers call without its progress bars and warnings on our output."""
    with contextlib.redirect_stderr(io.StringIO()):
        return function(*args, **kwargs)


def max_difference(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def compare_state(reference: dict, other: dict) -> tuple[list[str], float]:
    """Problems (missing, extra, shape, different values) and the largest difference seen."""
    problems, worst = [], 0.0
    for name in sorted(set(reference) - set(other)):
        problems.append(f"missing {name}")
    for name in sorted(set(other) - set(reference)):
        problems.append(f"unexpected {name}")
    for name in sorted(set(reference) & set(other)):
        a, b = reference[name], other[name]
        if tuple(a.shape) != tuple(b.shape):
            problems.append(f"shape of {name}: {tuple(b.shape)} instead of {tuple(a.shape)}")
            continue
        difference = max_difference(a, b)
        worst = max(worst, difference)
        if difference != 0:
            problems.append(f"{name} differs by up to {difference:.3e}")
    return problems, worst


CONFIG_KEYS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "head_dim", "hidden_act", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
               "bos_token_id", "eos_token_id", "attention_bias", "mlp_bias", "use_sliding_window", "layer_types",
               "rope_parameters", "rms_norm_eps"]


def same_value(a, b) -> bool:
    """Equality, with floats to 1e-6 relative (GGUF stores rms_norm_eps and rope values as float32)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[key], b[key]) for key in a)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-6 * abs(a)
    return a == b


def config_differences(truth_config, imported_config) -> tuple[int, list[str]]:
    """Keys the true config defines whose imported value differs. The legacy "type" next to an equal
    "rope_type" is left out (hlwq writes both, for loaders that read either)."""
    truth, imported = truth_config.to_dict(), imported_config.to_dict()
    rope = dict(imported.get("rope_parameters") or {})
    if rope.get("type") == rope.get("rope_type"):
        rope.pop("type", None)
    imported["rope_parameters"] = rope
    compared = [key for key in CONFIG_KEYS if truth.get(key) is not None]
    return len(compared), [f"{key}: {imported.get(key)!r} instead of {truth[key]!r}"
                           for key in compared if not same_value(truth[key], imported.get(key))]


def logits_of(model, token_ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0].numpy()


def true_model(case, expected):
    """The HF model the GGUF was written from, with its weights after their GGUF round trips."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config_dict = make_tiny_gguf.hf_config(case)
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    model = quietly(AutoModelForCausalLM.from_config, config, dtype=torch.float32)
    state = {name: torch.from_numpy(values) for name, values in expected.items()}
    if case.tied:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    return model.eval()


def mlx_logits(folder: pathlib.Path, token_ids):
    import mlx.core as mx
    from mlx_lm.utils import load_model

    model, _ = load_model(folder)
    return np.array(model(mx.array([token_ids]))[0].astype(mx.float32))


def check_case(case, hlwq: str, work: pathlib.Path, has_mlx: bool) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    failures = 0

    def report(check: str, ok: bool, detail: str, informational: bool = False) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        status = "info" if informational else "ok  " if ok else "FAIL"
        print(f"{case.name:18s} {check:17s} {status} {detail}", flush=True)

    gguf_path = work / f"{case.name}.gguf"
    expected = make_tiny_gguf.write_gguf(case, gguf_path)
    imported_folder = work / f"{case.name}-imported"
    run = subprocess.run([hlwq, "import", str(gguf_path), "-o", str(imported_folder), "--dtype", "f32"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        report("hlwq import", False, (run.stdout + run.stderr).strip().splitlines()[-1:])
        return failures

    truth = true_model(case, expected)
    imported, info = quietly(AutoModelForCausalLM.from_pretrained, imported_folder, dtype=torch.float32,
                             output_loading_info=True)
    load_problems = [f"{kind}: {sorted(names)}" for kind, names in info.items() if names]
    token_ids = np.random.default_rng(100 + case.seed).integers(0, case.vocab, 12).tolist()
    truth_logits = logits_of(truth, token_ids)
    imported_state = {name: value.numpy() for name, value in imported.state_dict().items()}
    truth_state = {name: value.numpy() for name, value in truth.state_dict().items()}
    problems, _ = compare_state(truth_state, imported_state)
    logits_difference = max_difference(truth_logits, logits_of(imported, token_ids))
    compared, differences = config_differences(truth.config, imported.config)
    report("config", not differences, f"{compared} keys compared with the true config"
           + "".join(f"; {difference}" for difference in differences))
    report("vs truth", not load_problems and not problems and logits_difference <= LOGIT_TOLERANCE_TRUTH,
           f"{len(truth_state)} tensors identical={not problems}, logits max abs diff {logits_difference:.2e}"
           + "".join(f"; {problem}" for problem in (load_problems + problems)[:4]))

    try:
        reference = quietly(AutoModelForCausalLM.from_pretrained, work, gguf_file=gguf_path.name,
                            dtype=torch.float32)
    except Exception as error:  # noqa: BLE001 - any refusal is reported, and is a failure only for "exact" cases
        report("transformers GGUF", case.transformers_gguf != "exact",
               f"loader refused: {type(error).__name__}: {str(error).splitlines()[0][:160]}",
               informational=case.transformers_gguf != "exact")
    else:
        reference_state = {name: value.numpy() for name, value in reference.state_dict().items()}
        problems, worst = compare_state(reference_state, imported_state)
        difference = max_difference(logits_of(reference, token_ids), logits_of(imported, token_ids))
        detail = (f"{len(reference_state)} tensors identical={not problems} (max diff {worst:.2e}), "
                  f"logits max abs diff {difference:.2e}")
        if case.transformers_gguf == "exact":
            report("transformers GGUF", not problems and difference == 0, detail + "".join(
                f"; {problem}" for problem in problems[:4]))
        else:
            report("transformers GGUF", True, f"(expected to differ: {case.transformers_gguf}) {detail}",
                   informational=True)

    reference_tokenizer = quietly(AutoTokenizer.from_pretrained, work, gguf_file=gguf_path.name)
    imported_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(imported_folder / "tokenizer.json"))
    differing = [text for text in TOKENIZER_TEXTS
                 if reference_tokenizer.encode(text, add_special_tokens=False)
                 != imported_tokenizer.encode(text, add_special_tokens=False)]
    report("tokenizer", not differing, f"{len(TOKENIZER_TEXTS)} texts, {len(differing)} differ"
           + (f": {differing[0]!r}" if differing else ""))

    if has_mlx:
        try:
            difference = max_difference(truth_logits, mlx_logits(imported_folder, token_ids))
            report("mlx_lm", difference <= LOGIT_TOLERANCE_MLX, f"logits max abs diff vs truth {difference:.2e}")
        except Exception as error:  # noqa: BLE001
            report("mlx_lm", False, f"load_model failed: {type(error).__name__}: {str(error)[:160]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hlwq", default="build/hlwq", help="path of the hlwq binary")
    parser.add_argument("cases", nargs="*", default=[case.name for case in make_tiny_gguf.CASES])
    args = parser.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    try:
        import mlx_lm.utils  # noqa: F401

        has_mlx = True
    except ImportError:
        has_mlx = False
        print("mlx_lm not installed: mlx checks skipped")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="hlwq-import-architectures-") as temporary:
        for name in args.cases:
            failures += check_case(make_tiny_gguf.CASES_BY_NAME[name], args.hlwq, pathlib.Path(temporary), has_mlx)
    print(f"{len(args.cases)} cases, {failures} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
