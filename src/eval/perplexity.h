// Perplexity over a token sequence with the two protocols of docs/DESIGN.md, independent of how
// logits are computed: the caller passes a function that returns logits for a window of tokens.
//  - llama.cpp protocol (stride 0): non-overlapping windows of `context` tokens, the first replaced
//    by BOS when the model has one, only the second half of each window scored.
//  - sliding windows (stride S): the Hugging Face protocol over the whole sequence; every token
//    after the first is scored exactly once with at least context - S tokens before it (fewer only
//    in the first window).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"

namespace hlwq {

struct PerplexityOptions {
  int64_t context = 512;
  int64_t stride = 0;               // 0: llama.cpp protocol
  std::optional<int32_t> bos_token;  // llama.cpp protocol: first token of each window becomes BOS
};

// Logits for positions first_row .. window.size() - 1 of `window` (the earlier ones are never
// scored, so a model can skip their output layer): (window.size() - first_row) x vocab floats.
using WindowLogits =
    std::function<void(std::span<const int32_t> window, int64_t first_row, std::vector<float>& logits)>;

// One window's scored tokens: token k (k < targets.size()) sits at sequence position
// first_position + k, predicts targets[k] and has logits row(k).
struct ScoredWindow {
  int64_t first_position = 0;
  int64_t vocab_size = 0;
  std::span<const float> logits;  // at least targets.size() rows of vocab_size floats
  std::span<const int32_t> targets;
  std::span<const double> log_sums;  // log_sum_exp(row(k)), computed once for the likelihood

  std::span<const float> row(size_t k) const { return logits.subspan(k * vocab_size, vocab_size); }
};

// Called once per window, windows in sequence order, after the window's log-likelihoods are
// summed. Per-token work inside may run on the pool (it is idle during the call).
using ScoredWindowVisitor = std::function<void(const ScoredWindow& window)>;

struct PerplexityResult {
  double perplexity = 0;
  double perplexity_stderr = 0;   // delta method: ppl * stderr of the mean negative log-likelihood
  double mean_nll = 0;
  double mean_nll_stderr = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  nlohmann::json to_json() const;
};

// log_sum_exp(logits) - logits[target] (the SIMD reduction of ops/vocabulary_row.h).
double negative_log_likelihood(std::span<const float> logits, int32_t target);

// The scored (window, position) plan, exposed for tests: each entry is a window [begin, end) of
// the token sequence and the first index inside it whose next-token prediction is scored.
struct PerplexityWindow {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t first_scored = 0;  // predictions at window positions first_scored .. end-begin-2 are scored
};
std::vector<PerplexityWindow> perplexity_windows(int64_t token_count, const PerplexityOptions& options);

// Each window's negative log-likelihoods are computed on `pool` (one per scored token, over the
// whole vocabulary: the bulk of the work besides the model) and summed in sequence order on one
// thread, so the result does not depend on the thread count.
PerplexityResult compute_perplexity(std::span<const int32_t> tokens, int64_t vocab_size,
                                    const PerplexityOptions& options, const WindowLogits& window_logits,
                                    ThreadPool& pool, const ScoredWindowVisitor& visitor = nullptr);

}  // namespace hlwq
