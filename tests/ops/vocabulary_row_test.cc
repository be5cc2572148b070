// The SIMD vocabulary-row reductions against their double references, on every Highway target,
// on random rows shaped like real logits (a few large values over a broad Gaussian body) and sizes
// that leave tails past whole vectors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "ops/vocabulary_row.h"
#include "test_util.h"

namespace hlwq {
namespace {

std::vector<float> logits_like(size_t count, uint32_t seed) {
  std::vector<float> row = random_normal(count, seed, 3.0f);
  for (size_t i = seed % 7; i < count; i += 997) row[i] += 15.0f;  // confident predictions
  return row;
}

std::vector<float> log_softmax_of(const std::vector<float>& row) {
  const double log_sum = log_sum_exp_reference(row);
  std::vector<float> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) out[i] = static_cast<float>(row[i] - log_sum);
  return out;
}

void expect_rows_match(const std::string& label) {
  for (size_t count : {size_t{1}, size_t{17}, size_t{1000}, size_t{49152}, size_t{151669}}) {
    const std::vector<float> logits = logits_like(count, static_cast<uint32_t>(count));
    // The reference distribution: another model's, rounded like a saved row (not normalized exactly).
    std::vector<float> other = logits_like(count, static_cast<uint32_t>(count) + 1);
    for (size_t i = 0; i < count; ++i) other[i] = 0.8f * logits[i] + 0.6f * other[i];
    std::vector<float> reference = log_softmax_of(other);
    for (float& value : reference) value = std::round(value * 1000.0f) / 1000.0f;

    const double expected_log_sum = log_sum_exp_reference(logits);
    EXPECT_NEAR(log_sum_exp(logits), expected_log_sum, 1e-6) << label << ", " << count << " values";

    const RowDivergence expected = row_divergence_reference(reference, logits, expected_log_sum);
    const RowDivergence actual = row_divergence(reference, logits, expected_log_sum);
    EXPECT_NEAR(actual.divergence, expected.divergence, 2e-6) << label << ", " << count << " values";
    EXPECT_NEAR(actual.reference_log_sum, expected.reference_log_sum, 1e-6) << label;
    EXPECT_EQ(actual.reference_argmax, expected.reference_argmax) << label;
    EXPECT_EQ(actual.model_argmax, expected.model_argmax) << label;
    if (count > 1) EXPECT_GT(expected.divergence, 1e-3) << "the test rows should differ";
  }
}

TEST(VocabularyRow, EverySimdTargetMatchesTheReference) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    expect_rows_match(std::string("target ") + hwy::TargetName(target));
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(VocabularyRow, IdenticalDistributionsHaveZeroDivergenceAndTheFirstMaximumWins) {
  std::vector<float> logits = logits_like(5000, 3);
  logits[10] = logits[4000] = 100.0f;  // a tie: the first index is the argmax
  const std::vector<float> reference = log_softmax_of(logits);
  const RowDivergence row = row_divergence(reference, logits, log_sum_exp(logits));
  EXPECT_NEAR(row.divergence, 0.0, 1e-6);
  EXPECT_EQ(row.model_argmax, 10u);
  EXPECT_EQ(row.reference_argmax, 10u);
}

TEST(VocabularyRow, NonFiniteRowsStayNonFinite) {
  std::vector<float> logits = logits_like(300, 4);
  logits[123] = NAN;
  EXPECT_FALSE(std::isfinite(log_sum_exp(logits)));
  logits[123] = INFINITY;
  EXPECT_FALSE(std::isfinite(log_sum_exp(logits)));
}

}  // namespace
}  // namespace hlwq
