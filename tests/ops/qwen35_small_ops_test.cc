// The small pieces of Qwen3.5's layers against transformers: the gated RMSNorm of the delta-net, the
// partial rotary embedding and the sigmoid output gate of full attention; plus properties on fresh
// random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/attention_output_gate.h"
#include "ops/gated_rms_norm.h"
#include "ops/partial_rotary_embedding.h"
#include "qwen35_ops_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(GatedRmsNorm, MatchesTransformers) {
  const std::vector<float> x = qwen35_ops_tensor("gnorm.x"), z = qwen35_ops_tensor("gnorm.z");
  const std::vector<float> weight = qwen35_ops_tensor("gnorm.weight");
  const std::vector<float> expected = qwen35_ops_tensor("gnorm.output");
  std::vector<float> out(x.size());
  gated_rms_norm(x, z, weight, 1e-6, out);
  EXPECT_LT(largest_difference(out, expected), 2e-6 * (1 + largest_magnitude(expected)));
}

TEST(GatedRmsNorm, FormulaOnRandomInputsAndInPlace) {
  const size_t width = 40, rows = 6;
  const std::vector<float> x = random_normal(rows * width, 1, 3.0f), z = random_normal(rows * width, 2, 2.0f);
  const std::vector<float> weight = random_normal(width, 3);
  std::vector<float> out = x;
  gated_rms_norm(out, z, weight, 1e-6, out);  // aliasing x and out is allowed
  double worst = 0;
  for (size_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (size_t i = 0; i < width; ++i) squares += double{x[r * width + i]} * x[r * width + i];
    const double inverse_rms = 1 / std::sqrt(squares / width + 1e-6);
    for (size_t i = 0; i < width; ++i) {
      const double gate = z[r * width + i] / (1 + std::exp(-double{z[r * width + i]}));
      const double expected = x[r * width + i] * inverse_rms * weight[i] * gate;
      worst = std::max(worst, std::fabs(expected - out[r * width + i]) / (1 + std::fabs(expected)));
    }
  }
  EXPECT_LT(worst, 1e-6);
}

TEST(PartialRotary, MatchesTransformers) {
  // 20 tokens x 3 heads x 32, rotary_dim 8 (partial_rotary_factor 0.25), theta 1e4.
  const std::vector<float> input = qwen35_ops_tensor("rope.input"), expected = qwen35_ops_tensor("rope.output");
  const int64_t head_dim = 32, heads = 3;
  const int64_t rotary_dim = static_cast<int64_t>(qwen35_ops_tensor("rope.rotary_dim")[0]);
  ASSERT_EQ(rotary_dim, 8);
  const std::vector<double> frequencies =
      partial_rotary_inverse_frequencies(rotary_dim, qwen35_ops_tensor("rope.theta")[0]);
  std::vector<float> out = input;
  const int64_t tokens = static_cast<int64_t>(input.size()) / (heads * head_dim);
  for (int64_t t = 0; t < tokens; ++t) {
    apply_partial_rotary(std::span(out).subspan(t * heads * head_dim, heads * head_dim), head_dim, rotary_dim, t,
                         frequencies);
  }
  // transformers makes the angles in float32 (position * float inv_freq); ours in double. At
  // position 19 the angle differs by a few float ulps of 19.
  EXPECT_LT(largest_difference(out, expected), 1e-5 * (1 + largest_magnitude(expected)));
  // Values from rotary_dim on pass through untouched.
  for (int64_t i = 0; i < tokens * heads; ++i) {
    for (int64_t d = rotary_dim; d < head_dim; ++d) ASSERT_EQ(out[i * head_dim + d], input[i * head_dim + d]);
  }
}

TEST(PartialRotary, PreservesPairNormsAndPositionZeroIsIdentity) {
  const int64_t head_dim = 16, rotary_dim = 4;
  const std::vector<double> frequencies = partial_rotary_inverse_frequencies(rotary_dim, 1e6);
  const std::vector<float> x = random_normal(2 * head_dim, 4);
  std::vector<float> at_zero = x, at_position = x;
  apply_partial_rotary(at_zero, head_dim, rotary_dim, 0, frequencies);
  EXPECT_EQ(at_zero, x);
  apply_partial_rotary(at_position, head_dim, rotary_dim, 1234, frequencies);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < rotary_dim / 2; ++i) {
      const float* a = x.data() + h * head_dim;
      const float* b = at_position.data() + h * head_dim;
      EXPECT_NEAR(std::hypot(a[i], a[i + 2]), std::hypot(b[i], b[i + 2]), 1e-5);
    }
  }
  EXPECT_NE(at_position, x);
  EXPECT_NE(error_message([&] { apply_partial_rotary(at_position, head_dim, 6, 1, frequencies); }), "(no error)");
}

TEST(AttentionOutputGate, SplitAndGateMatchTransformers) {
  const std::vector<float> projected = qwen35_ops_tensor("gate.projected");
  std::vector<float> query(projected.size() / 2), gate(projected.size() / 2);
  split_query_and_gate(projected, 4, 8, query, gate);
  EXPECT_EQ(query, qwen35_ops_tensor("gate.query"));
  EXPECT_EQ(gate, qwen35_ops_tensor("gate.gate"));
  std::vector<float> attention = qwen35_ops_tensor("gate.attention");
  apply_sigmoid_gate(attention, gate);
  EXPECT_LT(largest_difference(attention, qwen35_ops_tensor("gate.output")), 1e-6);
}

}  // namespace
}  // namespace hlwq
