#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace hlwq {

Sampler::Sampler(const SamplerOptions& options) : options_(options), generator_(options.seed) {
  check(options.top_k >= 0, "top-k must be >= 0, got ", options.top_k);
  check(options.top_p > 0.0f && options.top_p <= 1.0f, "top-p must be in (0, 1], got ", options.top_p);
  check(options.min_p >= 0.0f && options.min_p <= 1.0f, "min-p must be in [0, 1], got ", options.min_p);
  check(options.repeat_penalty > 0.0f, "repeat penalty must be positive, got ", options.repeat_penalty);
  check(std::isfinite(options.temperature), "temperature must be finite");
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> recent) {
  check(!logits.empty(), "no logits to sample from");
  std::vector<float> scores(logits.begin(), logits.end());
  if (options_.repeat_penalty != 1.0f) {
    std::vector<bool> seen(scores.size());
    for (int32_t token : recent) {
      if (token < 0 || static_cast<size_t>(token) >= scores.size() || seen[token]) continue;
      seen[token] = true;
      scores[token] = scores[token] > 0 ? scores[token] / options_.repeat_penalty
                                        : scores[token] * options_.repeat_penalty;
    }
  }
  if (options_.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
  }
  // Candidates sorted by score, highest first (ties: lower id first, so the order is total).
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  size_t keep = order.size();
  if (options_.top_k > 0) keep = std::min(keep, static_cast<size_t>(options_.top_k));
  std::vector<double> probabilities(keep);
  const double top_score = scores[order[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    probabilities[i] = std::exp((scores[order[i]] - top_score) / options_.temperature);
    total += probabilities[i];
  }
  for (double& probability : probabilities) probability /= total;
  if (options_.top_p < 1.0f) {
    double mass = 0;
    size_t count = 0;
    while (count < keep && mass < options_.top_p) mass += probabilities[count++];
    keep = std::max<size_t>(count, 1);
  }
  if (options_.min_p > 0.0f) {
    const double threshold = options_.min_p * probabilities[0];
    size_t count = 1;
    while (count < keep && probabilities[count] >= threshold) ++count;
    keep = count;
  }
  const double kept_mass = std::accumulate(probabilities.begin(), probabilities.begin() + keep, 0.0);
  // 53 random bits -> uniform in [0, 1), independent of the standard library's distributions.
  const double uniform = static_cast<double>(generator_() >> 11) * 0x1.0p-53;
  double target = uniform * kept_mass;
  for (size_t i = 0; i < keep; ++i) {
    target -= probabilities[i];
    if (target < 0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace hlwq
