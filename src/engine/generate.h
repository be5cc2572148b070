// Text generation over token ids: prefill the prompt as one batch, then sample and decode one
// token at a time until max_new_tokens, an end-of-sequence id, or the context is full.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "ops/backend.h"
#include "engine/sampler.h"

namespace hlwq {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  int64_t context_length = 0;     // 0: min(max_position_embeddings, prompt + max_new_tokens)
  DType kv_cache_dtype = DType::F16;
  SamplerOptions sampler;
  int64_t repeat_last_n = 64;     // how many recent tokens the repetition penalty looks at
  std::vector<int32_t> stop_ids;  // end-of-sequence ids (not emitted)
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids only
  std::optional<int32_t> stop_id;  // the stop id that ended generation (not in tokens), if one did
  double prefill_seconds = 0;
  double decode_seconds = 0;    // sampling and decoding after the prefill
};

// `on_token` (may be empty) sees each generated id as soon as it is chosen. Runs on the CPU.
GenerateResult generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        ThreadPool& pool, const std::function<void(int32_t)>& on_token = {});

// The same on any backend (a runner is made for this generation's context).
GenerateResult generate(const Model& model, Backend& backend, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const std::function<void(int32_t)>& on_token = {});

// The same in sequence 0 of a runner made beforehand (a chat keeps one runner for every turn; its
// context length applies, options.context_length and kv_cache_dtype do not).
GenerateResult generate(ModelRunner& runner, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token = {});

// The context a generation needs: options.context_length when set, else prompt + max_new_tokens up
// to the model's maximum.
int64_t generation_context(const Model& model, int64_t prompt_tokens, const GenerateOptions& options);

// The end-of-sequence ids of config.json ("eos_token_id": a number or a list), empty if none.
std::vector<int32_t> end_of_sequence_ids(const nlohmann::json& config);

}  // namespace hlwq
