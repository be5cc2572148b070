// The causal depthwise conv1d + SiLU of the gated delta-net: against transformers' cached path,
// against the plain reference on fresh random inputs, and prefill-then-steps against one pass.
#include "ops/causal_conv1d.h"

#include <gtest/gtest.h>

#include <vector>

#include "qwen35_ops_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(CausalConv1d, MatchesTransformersWithCarriedState) {
  const std::vector<float> input = qwen35_ops_tensor("conv.input");
  const std::vector<float> weight = qwen35_ops_tensor("conv.weight");
  std::vector<float> state = qwen35_ops_tensor("conv.state_in");
  const std::vector<float> expected = qwen35_ops_tensor("conv.output");
  const std::vector<float> expected_state = qwen35_ops_tensor("conv.state_out");
  const int64_t kernel = 4, channels = static_cast<int64_t>(weight.size()) / kernel;
  std::vector<float> out(input.size(), 99.0f);
  causal_conv1d_silu(input, channels, weight, kernel, state, out);
  // Four products per output, values of order 1: a few float roundings.
  EXPECT_LT(largest_difference(out, expected), 2e-6);
  EXPECT_EQ(state, expected_state);  // the state is a copy of inputs: exact
}

TEST(CausalConv1d, MatchesReferenceOnRandomInputs) {
  for (int64_t kernel : {1, 2, 4}) {
    for (int64_t tokens : {1, 2, 3, 7}) {
      const int64_t channels = 37;  // not a multiple of any vector width
      const uint32_t seed = static_cast<uint32_t>(100 * kernel + tokens);
      const std::vector<float> input = random_normal(tokens * channels, seed, 2.0f);
      const std::vector<float> weight = random_normal(channels * kernel, seed + 1);
      const std::vector<float> initial = random_normal(channels * (kernel - 1), seed + 2);
      std::vector<float> state = initial, reference_state = initial;
      std::vector<float> out(input.size()), expected(input.size());
      causal_conv1d_silu(input, channels, weight, kernel, state, out);
      causal_conv1d_silu_reference(input, channels, weight, kernel, reference_state, expected);
      EXPECT_LT(largest_difference(out, expected), 1e-5 * (1 + largest_magnitude(expected)))
          << "kernel " << kernel << ", tokens " << tokens;
      EXPECT_EQ(state, reference_state) << "kernel " << kernel << ", tokens " << tokens;
    }
  }
}

TEST(CausalConv1d, PrefillThenStepsEqualsOnePass) {
  const int64_t channels = 19, kernel = 4, tokens = 11;
  const std::vector<float> input = random_normal(tokens * channels, 7, 1.5f);
  const std::vector<float> weight = random_normal(channels * kernel, 8);
  std::vector<float> whole_state(channels * (kernel - 1), 0.0f), whole(input.size());
  causal_conv1d_silu(input, channels, weight, kernel, whole_state, whole);
  // Pieces of 5, 2 (fewer than kernel - 1: the state keeps part of the older rows), then single steps.
  std::vector<float> state(channels * (kernel - 1), 0.0f), pieces(input.size(), -1.0f);
  int64_t first = 0;
  for (int64_t length : {5, 2, 1, 1, 1, 1}) {
    const std::span<const float> piece(input.data() + first * channels, length * channels);
    causal_conv1d_silu(piece, channels, weight, kernel, state, std::span(pieces.data() + first * channels,
                                                                         length * channels));
    first += length;
  }
  ASSERT_EQ(first, tokens);
  // The same products in the same order: bit for bit.
  EXPECT_EQ(pieces, whole);
  EXPECT_EQ(state, whole_state);
}

TEST(CausalConv1d, RejectsMismatchedSizes) {
  std::vector<float> input(12), weight(12), short_weight(10), state(9), short_state(6), out(12), short_out(9);
  EXPECT_NE(error_message([&] { causal_conv1d_silu(input, 3, short_weight, 4, state, out); }).find("weight"),
            std::string::npos);
  EXPECT_NE(error_message([&] { causal_conv1d_silu(input, 3, weight, 4, short_state, out); }).find("state"),
            std::string::npos);
  EXPECT_NE(error_message([&] { causal_conv1d_silu(input, 3, weight, 4, state, short_out); }).find("sizes"),
            std::string::npos);
  EXPECT_EQ(error_message([&] { causal_conv1d_silu(input, 3, weight, 4, state, out); }), "(no error)");
}

}  // namespace
}  // namespace hlwq
