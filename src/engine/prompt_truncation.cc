#include "engine/prompt_truncation.h"

#include "core/error.h"

namespace hlwq {

int64_t prompt_room(const ModelConfig& config, const GenerateOptions& options) {
  const int64_t context = options.context_length > 0 ? options.context_length : config.max_position_embeddings;
  check(options.max_new_tokens < context, "asking for ", options.max_new_tokens,
        " new tokens leaves no room for a prompt in a context of ", context, " positions");
  return context - options.max_new_tokens;
}

std::vector<int32_t> keep_last_tokens(std::span<const int32_t> prompt, int64_t max_tokens,
                                      std::optional<int32_t> bos) {
  if (static_cast<int64_t>(prompt.size()) <= max_tokens) return {prompt.begin(), prompt.end()};
  const bool keeps_bos = bos.has_value() && !prompt.empty() && prompt.front() == *bos;
  const int64_t tail = max_tokens - (keeps_bos ? 1 : 0);
  check(tail >= 1, "no room for a prompt token", keeps_bos ? " after the BOS" : "", " in ", max_tokens,
        " prompt positions");
  std::vector<int32_t> kept;
  kept.reserve(static_cast<size_t>(max_tokens));
  if (keeps_bos) kept.push_back(*bos);
  const std::span<const int32_t> newest = prompt.last(static_cast<size_t>(tail));
  kept.insert(kept.end(), newest.begin(), newest.end());
  return kept;
}

}  // namespace hlwq
