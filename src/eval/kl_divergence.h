// KL-divergence of a model's next-token distributions against a reference's (from a logits file),
// token by token, with the statistics llama.cpp reports: mean (+- stderr), median, 90/99/99.9th
// percentiles, maximum, top-1 agreement, and RMS of the change in the correct token's probability.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlwq {

// What one token contributes to the statistics.
struct TokenDivergence {
  double divergence = 0;          // KL(reference || model), clamped at 0 (rounding can go below)
  bool top1_agrees = false;       // both distributions put their maximum on the same token
  double probability_change = 0;  // p_model(target) - p_reference(target)
};

// One token's KL-divergence and agreement. reference_log_probs: the base model's log-probabilities
// (renormalized here: 16-bit storage leaves their mass within ~1e-4 of 1); logits: the evaluated
// model's. A pure function of its inputs, so tokens can be compared on any thread.
TokenDivergence token_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                                 int32_t target);
// The same with log_sum_exp(logits) already computed (perplexity has it for every scored token).
TokenDivergence token_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                                 int32_t target, double logits_log_sum);

// Gathers TokenDivergence values in token order (the sums, and so the statistics, depend on it).
class KlDivergenceAccumulator {
 public:
  void add(const TokenDivergence& token);
  // add(token_divergence(reference_log_probs, logits, target)).
  void add(std::span<const float> reference_log_probs, std::span<const float> logits, int32_t target);
  nlohmann::json to_json() const;
  int64_t count() const { return static_cast<int64_t>(divergences_.size()); }
  double mean() const;

 private:
  std::vector<double> divergences_;
  int64_t top1_agreements_ = 0;
  double sum_squared_probability_change_ = 0;
};

}  // namespace hlwq
