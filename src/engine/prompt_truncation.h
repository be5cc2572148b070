// Fitting a prompt into the context window by keeping its newest tokens (`hlwq run --truncate`):
// the text nearest the continuation matters most to it, so the oldest tokens go first.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/generate.h"
#include "engine/model_config.h"

namespace hlwq {

// Prompt positions left beside options.max_new_tokens in the context generate() can use
// (options.context_length, or the model's max_position_embeddings when that is 0). Throws
// hlwq::Error when max_new_tokens leaves none.
int64_t prompt_room(const ModelConfig& config, const GenerateOptions& options);

// The prompt cut to at most `max_tokens` ids by dropping its oldest ones; a leading `bos` (when
// given and prompt[0] is it) stays in front, so the result is [bos] + the last max_tokens - 1 ids.
// A prompt that fits comes back unchanged. Throws hlwq::Error when max_tokens leaves no room for
// a token after the kept BOS.
std::vector<int32_t> keep_last_tokens(std::span<const int32_t> prompt, int64_t max_tokens,
                                      std::optional<int32_t> bos);

}  // namespace hlwq
