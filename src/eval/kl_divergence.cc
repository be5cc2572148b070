#include "eval/kl_divergence.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/logits_file.h"

namespace hlwq {

void KlDivergenceAccumulator::add(std::span<const float> reference_log_probs, std::span<const float> logits,
                                  int32_t target) {
  check(reference_log_probs.size() == logits.size(), "vocabulary sizes differ: reference ",
        reference_log_probs.size(), ", model ", logits.size());
  log_probs_.resize(logits.size());
  log_softmax(logits, log_probs_);
  // Renormalize the reference (16-bit storage leaves its mass within ~1e-4 of 1).
  double reference_sum = 0;
  for (float value : reference_log_probs) reference_sum += std::exp(static_cast<double>(value));
  const double reference_log_sum = std::log(reference_sum);
  double divergence = 0;
  size_t reference_best = 0, model_best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double reference = reference_log_probs[i] - reference_log_sum;
    divergence += std::exp(reference) * (reference - log_probs_[i]);
    if (reference_log_probs[i] > reference_log_probs[reference_best]) reference_best = i;
    if (log_probs_[i] > log_probs_[model_best]) model_best = i;
  }
  divergences_.push_back(std::max(0.0, divergence));
  if (reference_best == model_best) ++top1_agreements_;
  const double change = std::exp(static_cast<double>(log_probs_[target])) -
                        std::exp(reference_log_probs[target] - reference_log_sum);
  sum_squared_probability_change_ += change * change;
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
