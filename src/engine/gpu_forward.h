// The decoder on a CUDA GPU for evaluation (`hlwq ppl --backend cuda`): every linear weight is
// dequantized once to F32 through the same row dequantizers as the CPU reference
// (dequantize_linear_row) and multiplied with cuBLAS in FP32; norms, RoPE, attention and the MLP
// activation are kernels in ops/cuda/ that mirror the CPU functions; keys and values are rounded to
// the KV cache's dtype as the CPU cache stores them. The result is the same model as the CPU
// runtime's, summed in another order: tests bound the logit difference on each architecture.
//
// What it costs: 4 bytes per weight of GPU memory (540 MB for SmolLM2-135M), so it measures
// quality, not the formats' speed or memory; the CPU runtime executes the packed formats.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "engine/forward.h"
#include "engine/model.h"

namespace hlwq {

// True when this hlwq was built with CUDA and a GPU is visible.
bool gpu_forward_available();

class GpuForward {
 public:
  // Uploads the model for passes of up to context_length tokens. Throws hlwq::Error when built
  // without CUDA, when there is no GPU, or when the GPU lacks memory. `model` and `pool` must
  // outlive this (the pool copies logits out of the pinned staging buffer).
  GpuForward(const Model& model, int64_t context_length, DType kv_cache_dtype, ThreadPool& pool);
  ~GpuForward();
  GpuForward(const GpuForward&) = delete;
  GpuForward& operator=(const GpuForward&) = delete;

  // One pass over tokens at positions 0 .. tokens.size() - 1 of a fresh context; logits of tokens
  // which.first_token .. (row-major, vocab_size each) into `logits` (resized; pass the same vector
  // again to reuse its memory: a 512-token window's logits are 100 MB for a 49k vocabulary). Throws
  // for an out-of-vocabulary token, more tokens than the context length, or NaN logits.
  void window_logits(std::span<const int32_t> tokens, LogitsFrom which, std::vector<float>& logits);
  std::vector<float> window_logits(std::span<const int32_t> tokens, LogitsFrom which);

  uint64_t device_bytes() const;  // GPU memory held for weights and activations

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace hlwq
