// Sampler: greedy, seeded determinism, temperature frequencies, top-k, top-p, min-p, repetition penalty.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

std::vector<int> counts_of(const SamplerOptions& options, const std::vector<float>& logits, int draws,
                           const std::vector<int32_t>& recent = {}) {
  Sampler sampler(options);
  std::vector<int> counts(logits.size());
  for (int i = 0; i < draws; ++i) ++counts[sampler.sample(logits, recent)];
  return counts;
}

TEST(Sampler, GreedyIsTheArgmax) {
  const std::vector<float> logits = random_normal(500, 3);
  const int32_t expected = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  Sampler sampler(SamplerOptions{});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sampler.sample(logits, {}), expected);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
  const std::vector<float> logits = random_normal(200, 5, 0.5f);
  SamplerOptions options;
  options.temperature = 1.0f;
  options.seed = 42;
  Sampler first(options), second(options);
  options.seed = 43;
  Sampler other(options);
  int differences = 0;
  for (int i = 0; i < 50; ++i) {
    const int32_t token = first.sample(logits, {});
    EXPECT_EQ(token, second.sample(logits, {}));
    differences += token != other.sample(logits, {});
  }
  EXPECT_GT(differences, 20);
}

// At temperature T the draw frequencies follow softmax(logits / T) (binomial tolerance: 4 sigma).
TEST(Sampler, TemperatureFrequenciesFollowTheSoftmax) {
  const std::vector<float> logits = {1.0f, 0.0f, -0.5f, 2.0f};
  for (float temperature : {0.5f, 1.0f, 2.0f}) {
    SamplerOptions options;
    options.temperature = temperature;
    options.seed = 9;
    const int draws = 20000;
    const std::vector<int> counts = counts_of(options, logits, draws);
    double total = 0;
    for (float logit : logits) total += std::exp(logit / temperature);
    for (size_t i = 0; i < logits.size(); ++i) {
      const double p = std::exp(logits[i] / temperature) / total;
      const double sigma = std::sqrt(p * (1 - p) / draws);
      EXPECT_NEAR(counts[i] / static_cast<double>(draws), p, 4 * sigma + 1e-4) << "T " << temperature << " token " << i;
    }
  }
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  const std::vector<float> logits = {0.1f, 3.0f, 0.2f, 2.9f, 0.0f, 2.8f};
  SamplerOptions options;
  options.temperature = 5.0f;  // nearly flat: without top-k every token would appear
  options.top_k = 2;
  const std::vector<int> counts = counts_of(options, logits, 4000);
  EXPECT_GT(counts[1], 1000);
  EXPECT_GT(counts[3], 1000);
  EXPECT_EQ(counts[0] + counts[2] + counts[4] + counts[5], 0);
  options.top_k = 0;
  const std::vector<int> all = counts_of(options, logits, 4000);
  for (int count : all) EXPECT_GT(count, 300);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities at T=1: 0.5, 0.3, 0.2 (logits are their logs).
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplerOptions options;
  options.temperature = 1.0f;
  options.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: the first two
  std::vector<int> counts = counts_of(options, logits, 8000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 8000.0, 0.5 / 0.8, 0.03);
  options.top_p = 0.4f;  // the first alone
  counts = counts_of(options, logits, 100);
  EXPECT_EQ(counts[0], 100);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheTop) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplerOptions options;
  options.temperature = 1.0f;
  options.min_p = 0.5f;  // threshold 0.25: keeps 0.5 and 0.3
  std::vector<int> counts = counts_of(options, logits, 8000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 2000);
  options.min_p = 0.7f;  // threshold 0.35: only the top
  counts = counts_of(options, logits, 100);
  EXPECT_EQ(counts[0], 100);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerOptions options;
  options.repeat_penalty = 2.0f;
  Sampler sampler(options);
  // Token 0 (3.0 -> 1.5) loses to token 1 (2.0) once it was seen; a negative logit only falls further.
  const std::vector<float> logits = {3.0f, 2.0f, -0.1f};
  EXPECT_EQ(sampler.sample(logits, {}), 0);
  EXPECT_EQ(sampler.sample(logits, std::vector<int32_t>{0, 0, 0}), 1);
  const std::vector<float> negative = {-1.0f, -1.5f};
  EXPECT_EQ(sampler.sample(negative, std::vector<int32_t>{0}), 1);  // -2.0 < -1.5
  // Out-of-range history entries are ignored.
  EXPECT_EQ(sampler.sample(logits, std::vector<int32_t>{-4, 99}), 0);
}

TEST(Sampler, RejectsBadOptions) {
  SamplerOptions options;
  options.top_k = -1;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.top_p = 0.0f;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.min_p = 1.5f;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler{options}, Error);
  Sampler sampler(SamplerOptions{});
  EXPECT_THROW(sampler.sample(std::vector<float>{}, {}), Error);
}

}  // namespace
}  // namespace hlwq
