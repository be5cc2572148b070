#!/usr/bin/env python3
"""GPU peers of `hlwq bench --backend cuda`, measured on the same machine in the same call.

  int4     PyTorch's built-in INT4 weight-only kernel (torch.ops.aten._weight_int4pack_mm, group 128,
           bf16 activations) on every linear layer shape of one Llama-3-8B decode step (32 layers x
           q, k, v, o, gate, up, down, plus the lm_head), random weights, batch 1, the whole step
           recorded in one CUDA graph: the time of the linears alone, so tokens/s here is an upper
           bound for a model that runs this kernel (hlwq's tokens/s includes attention, norms and
           everything else of the step).
  hf-bf16  Hugging Face transformers, LlamaForCausalLM of the Llama-3-8B shape with random BF16
           weights, generate() with a static KV cache (eager, no torch.compile), 512 random prompt
           tokens then 128 new tokens, greedy.

Prints one JSON object per peer. Needs torch (and transformers for hf-bf16); the device machine has
both.

usage: peer_gpu_bench.py [int4] [hf-bf16]
"""
import json
import sys
import time

import torch

HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 4096, 14336, 32, 32, 8, 128, 128256


def int4_step():
    group = 128
    shapes = [(HEADS * HEAD_DIM, HIDDEN), (KV_HEADS * HEAD_DIM, HIDDEN), (KV_HEADS * HEAD_DIM, HIDDEN),
              (HIDDEN, HEADS * HEAD_DIM), (INTERMEDIATE, HIDDEN), (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)]
    layers = [shape for _ in range(LAYERS) for shape in shapes] + [(VOCAB, HIDDEN)]
    weights, inputs, outputs = [], [], []
    weight_bytes = 0
    for n, k in layers:
        packed = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda")
        weight = torch.ops.aten._convert_weight_to_int4pack(packed, 8)
        scales = (torch.rand(k // group, n, 2, device="cuda") * 0.01).to(torch.bfloat16)
        weights.append((weight, scales))
        inputs.append(torch.randn(1, k, device="cuda", dtype=torch.bfloat16))
        weight_bytes += n * k // 2 + scales.numel() * 2

    def step():
        for (weight, scales), x in zip(weights, inputs):
            outputs.append(torch.ops.aten._weight_int4pack_mm(x, weight, group, scales))
        outputs.clear()

    step()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for (weight, scales), x in zip(weights, inputs):
            torch.ops.aten._weight_int4pack_mm(x, weight, group, scales)
    for _ in range(5):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(30):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    times.sort()
    seconds = times[len(times) // 2]
    return {"peer": "torch _weight_int4pack_mm (group 128), Llama-3-8B linear shapes, one CUDA graph",
            "device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "linears_seconds_per_token": seconds, "tokens_per_second_upper_bound": 1 / seconds,
            "weight_bytes_per_token": weight_bytes, "achieved_gb_per_second": weight_bytes / seconds / 1e9}


def hf_bf16():
    import transformers
    config = transformers.LlamaConfig(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
                                      vocab_size=VOCAB, max_position_embeddings=8192, rope_theta=500000.0,
                                      tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(config).to(torch.bfloat16).eval()
    prompt = torch.randint(0, VOCAB, (1, 512), device="cuda")
    settings = dict(do_sample=False, cache_implementation="static", pad_token_id=0, eos_token_id=None)

    def timed(new_tokens):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings)
        torch.cuda.synchronize()
        assert out.shape[1] == 512 + new_tokens
        return time.perf_counter() - start

    timed(8)  # warm-up
    prefill = min(timed(1) for _ in range(2))
    full = min(timed(129) for _ in range(2))
    return {"peer": "transformers LlamaForCausalLM BF16, static cache, eager", "device": torch.cuda.get_device_name(),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "prefill_seconds_512": prefill, "decode_tokens_per_second": 128 / (full - prefill)}


if __name__ == "__main__":
    for peer in sys.argv[1:] or ["int4", "hf-bf16"]:
        try:
            result = int4_step() if peer == "int4" else hf_bf16()
        except Exception as error:  # a peer that fails is reported, not hidden
            result = {"peer": peer, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(result), flush=True)
        torch.cuda.empty_cache()
