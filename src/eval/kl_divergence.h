// KL-divergence of a model's next-token distributions against a reference's (from a logits file),
// token by token, with the statistics llama.cpp reports: mean (+- stderr), median, 90/99/99.9th
// percentiles, maximum, top-1 agreement, and RMS of the change in the correct token's probability.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlwq {

class KlDivergenceAccumulator {
 public:
  // reference_log_probs: the base model's log-probabilities; logits: the evaluated model's.
  void add(std::span<const float> reference_log_probs, std::span<const float> logits, int32_t target);
  nlohmann::json to_json() const;
  int64_t count() const { return static_cast<int64_t>(divergences_.size()); }
  double mean() const;

 private:
  std::vector<double> divergences_;
  int64_t top1_agreements_ = 0;
  double sum_squared_probability_change_ = 0;
  std::vector<float> log_probs_;
};

}  // namespace hlwq
