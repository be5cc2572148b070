#include "eval/kl_divergence.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/logits_file.h"

namespace hlwq {

TokenDivergence token_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                                 int32_t target) {
  check(reference_log_probs.size() == logits.size(), "vocabulary sizes differ: reference ",
        reference_log_probs.size(), ", model ", logits.size());
  check(target >= 0 && static_cast<size_t>(target) < logits.size(), "token id ", target,
        " outside the vocabulary (", logits.size(), ")");
  // The model's log-softmax, formed value by value as log_softmax() would store it (no scratch row).
  const double log_sum = log_sum_exp(logits);
  const auto log_prob = [&](size_t i) { return static_cast<float>(logits[i] - log_sum); };
  double reference_sum = 0;
  for (float value : reference_log_probs) reference_sum += std::exp(static_cast<double>(value));
  const double reference_log_sum = std::log(reference_sum);
  double divergence = 0;
  size_t reference_best = 0;
  float model_best_value = log_prob(0);
  size_t model_best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double reference = reference_log_probs[i] - reference_log_sum;
    const float model = log_prob(i);
    divergence += std::exp(reference) * (reference - model);
    if (reference_log_probs[i] > reference_log_probs[reference_best]) reference_best = i;
    if (model > model_best_value) {
      model_best = i;
      model_best_value = model;
    }
  }
  TokenDivergence token;
  token.divergence = std::max(0.0, divergence);
  token.top1_agrees = reference_best == model_best;
  token.probability_change = std::exp(static_cast<double>(log_prob(target))) -
                             std::exp(reference_log_probs[target] - reference_log_sum);
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
