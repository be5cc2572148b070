#include "engine/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "ops/cpu/cpu_backend.h"

namespace hlwq {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::vector<int32_t> end_of_sequence_ids(const nlohmann::json& config) {
  std::vector<int32_t> ids;
  const auto found = config.find("eos_token_id");
  if (found == config.end()) return ids;
  if (found->is_number_integer()) ids.push_back(found->get<int32_t>());
  if (found->is_array()) {
    for (const nlohmann::json& id : *found) {
      if (id.is_number_integer()) ids.push_back(id.get<int32_t>());
    }
  }
  return ids;
}

int64_t generation_context(const Model& model, int64_t prompt_tokens, const GenerateOptions& options) {
  return options.context_length > 0
             ? options.context_length
             : std::min(model.config().max_position_embeddings, prompt_tokens + options.max_new_tokens);
}

GenerateResult generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        ThreadPool& pool, const std::function<void(int32_t)>& on_token) {
  CpuBackend backend(pool);
  return generate(model, backend, prompt, options, on_token);
}

GenerateResult generate(const Model& model, Backend& backend, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const std::function<void(int32_t)>& on_token) {
  check(!prompt.empty(), "the prompt has no tokens");
  const int64_t context = generation_context(model, static_cast<int64_t>(prompt.size()), options);
  check(static_cast<int64_t>(prompt.size()) <= context, "the prompt has ", prompt.size(),
        " tokens, more than the context length ", context);
  RunnerOptions runner_options;
  runner_options.context_length = context;
  runner_options.kv_cache_dtype = options.kv_cache_dtype;
  ModelRunner runner(model, backend, runner_options);
  return generate(runner, prompt, options, on_token);
}

GenerateResult generate(ModelRunner& runner, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token) {
  check(!prompt.empty(), "the prompt has no tokens");
  check(options.max_new_tokens >= 0, "max new tokens must be >= 0, got ", options.max_new_tokens);
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  const int64_t context = runner.context_length();
  check(prompt_length <= context, "the prompt has ", prompt_length, " tokens, more than the context length ", context);
  Sampler sampler(options.sampler);
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  GenerateResult result;
  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = runner.forward(0, prompt, 0, LogitsFor::last_position);
  result.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  while (static_cast<int64_t>(result.tokens.size()) < options.max_new_tokens) {
    const size_t window = static_cast<size_t>(std::max<int64_t>(options.repeat_last_n, 0));
    const std::span<const int32_t> recent = std::span<const int32_t>(history).last(std::min(window, history.size()));
    const int32_t token = sampler.sample(logits, recent);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end()) {
      result.stop_id = token;
      break;
    }
    result.tokens.push_back(token);
    history.push_back(token);
    if (on_token) on_token(token);
    const int64_t position = static_cast<int64_t>(history.size()) - 1;
    if (static_cast<int64_t>(result.tokens.size()) == options.max_new_tokens || position >= context) break;
    runner.forward(0, std::span<const int32_t>(&history.back(), 1), position, LogitsFrom{0}, logits);
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace hlwq
