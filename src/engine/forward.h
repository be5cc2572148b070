// One forward pass of the decoder: tokens at consecutive positions in, logits out. A prompt goes
// through as one batch (each linear layer one linear_forward with batch = token count); decoding
// passes one token at a time. Keys and values land in the KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/model.h"

namespace hlwq {

enum class LogitsFor { last_position, all_positions };
// Logits for the tokens from this index of the pass on (perplexity scores only part of a window, and
// the output layer is a large share of the work: a fifth of it for SmolLM2-135M).
struct LogitsFrom {
  int64_t first_token = 0;
};

// tokens sit at positions start_position .. start_position + tokens.size() - 1; the cache must hold
// this model's earlier positions. Returns vocab_size logits for the last token, or tokens x vocab_size.
// Throws hlwq::Error for a token outside the vocabulary, a context overflow, or NaN logits; the NaN
// message names the first layer whose output holds a NaN (found by running the pass again with a
// check after every layer).
std::vector<float> forward(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                           int64_t start_position, LogitsFor which, ThreadPool& pool);
// The same for tokens first_token .. tokens.size() - 1: (tokens.size() - first_token) x vocab_size.
std::vector<float> forward(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                           int64_t start_position, LogitsFrom which, ThreadPool& pool);

// A KV cache shaped for the model. Throws when context_length exceeds a sliding attention window.
KvCache make_kv_cache(const Model& model, int64_t context_length, DType dtype);

}  // namespace hlwq
