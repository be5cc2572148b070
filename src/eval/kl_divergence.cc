#include "eval/kl_divergence.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/logits_file.h"
#include "ops/vocabulary_row.h"

namespace hlwq {

TokenDivergence token_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                                 int32_t target) {
  return token_divergence(reference_log_probs, logits, target, log_sum_exp(logits));
}

TokenDivergence token_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                                 int32_t target, double log_sum) {
  check(reference_log_probs.size() == logits.size(), "vocabulary sizes differ: reference ",
        reference_log_probs.size(), ", model ", logits.size());
  check(target >= 0 && static_cast<size_t>(target) < logits.size(), "token id ", target,
        " outside the vocabulary (", logits.size(), ")");
  const RowDivergence row = row_divergence(reference_log_probs, logits, log_sum);
  TokenDivergence token;
  token.divergence = std::max(0.0, row.divergence);
  token.top1_agrees = row.reference_argmax == row.model_argmax;
  token.probability_change = std::exp(static_cast<double>(logits[target]) - log_sum) -
                             std::exp(reference_log_probs[target] - row.reference_log_sum);
  return token;
}

void KlDivergenceAccumulator::add(const TokenDivergence& token) {
  divergences_.push_back(token.divergence);
  if (token.top1_agrees) ++top1_agreements_;
  sum_squared_probability_change_ += token.probability_change * token.probability_change;
}

void KlDivergenceAccumulator::add(std::span<const float> reference_log_probs, std::span<const float> logits,
                                  int32_t target) {
  add(token_divergence(reference_log_probs, logits, target));
}

double KlDivergenceAccumulator::mean() const {
  double sum = 0;
  for (double value : divergences_) sum += value;
  return divergences_.empty() ? 0 : sum / divergences_.size();
}

nlohmann::json KlDivergenceAccumulator::to_json() const {
  const size_t count = divergences_.size();
  check(count > 0, "no tokens compared for KL-divergence");
  std::vector<double> sorted = divergences_;
  std::sort(sorted.begin(), sorted.end());
  const auto percentile = [&](double fraction) {
    const double position = fraction * (count - 1);
    const size_t low = static_cast<size_t>(position);
    const size_t high = std::min(low + 1, count - 1);
    return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
  };
  const double average = mean();
  double variance = 0;
  for (double value : divergences_) variance += (value - average) * (value - average);
  variance = count > 1 ? variance / (count - 1) : 0;
  return {{"tokens", count},
          {"mean", average},
          {"mean_stderr", std::sqrt(variance / count)},
          {"median", percentile(0.5)},
          {"p90", percentile(0.9)},
          {"p99", percentile(0.99)},
          {"p99_9", percentile(0.999)},
          {"max", sorted.back()},
          {"top1_agreement", static_cast<double>(top1_agreements_) / count},
          {"rms_delta_p", std::sqrt(sum_squared_probability_change_ / count)}};
}

}  // namespace hlwq
