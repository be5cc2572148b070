// RoPE rotation and the linear / llama3 frequency scaling rules.
#include "ops/rotary_embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(Rope, RotatesHalfPairsByPositionTimesFrequency) {
  const int head_dim = 8;
  std::vector<float> x = random_normal(2 * head_dim, 3);
  const std::vector<float> original = x;
  const std::vector<double> frequencies = rope_inverse_frequencies(head_dim, 100.0, RopeScaling{});
  ASSERT_EQ(frequencies.size(), 4u);
  EXPECT_NEAR(frequencies[1], std::pow(100.0, -2.0 / 8), 1e-12);
  apply_rope(x, head_dim, 5, frequencies);
  for (int head = 0; head < 2; ++head) {
    for (int i = 0; i < 4; ++i) {
      const double angle = 5 * frequencies[i];
      const float a = original[head * 8 + i], b = original[head * 8 + i + 4];
      EXPECT_NEAR(x[head * 8 + i], a * std::cos(angle) - b * std::sin(angle), 1e-5);
      EXPECT_NEAR(x[head * 8 + i + 4], b * std::cos(angle) + a * std::sin(angle), 1e-5);
    }
  }
}

// The angles made once per token (what the forward pass shares between layers) rotate exactly as
// the per-call form, for Llama 3 scaled frequencies, nine heads and positions up to 100,000.
TEST(Rope, AnglesOfAPositionRotateExactlyAsThePositionDoes) {
  const int64_t head_dim = 64;
  const auto frequencies =
      rope_inverse_frequencies(head_dim, 500000.0, RopeScaling{RopeScalingType::llama3, 8.0, 1.0, 4.0, 8192});
  uint32_t seed = 40;
  for (int64_t position : {0, 1, 77, 4095, 100000}) {
    std::vector<float> by_position = random_normal(9 * head_dim, seed++);
    std::vector<float> by_angles = by_position;
    apply_rope(by_position, head_dim, position, frequencies);
    const RopeAngles angles = rope_angles(position, frequencies);
    apply_rope(by_angles, head_dim, angles);
    EXPECT_EQ(by_angles, by_position) << position;
    if (position != 0) EXPECT_NE(by_angles, random_normal(9 * head_dim, seed - 1)) << position;
  }
  // More angles than half a head is an error; fewer rotate only the head's first 2 x angles values
  // (partial rotary), the rest passing through.
  std::vector<float> short_head(head_dim - 2, 1.0f);
  EXPECT_THROW(apply_rope(short_head, head_dim - 2, rope_angles(3, frequencies)), Error);
  std::vector<float> wide = random_normal(2 * (head_dim + 8), 50);
  const std::vector<float> before = wide;
  apply_rope(wide, head_dim + 8, rope_angles(3, frequencies));
  for (int64_t head = 0; head < 2; ++head) {
    for (int64_t i = head_dim; i < head_dim + 8; ++i) {
      EXPECT_EQ(wide[head * (head_dim + 8) + i], before[head * (head_dim + 8) + i]) << i;
    }
    EXPECT_NE(wide[head * (head_dim + 8) + 1], before[head * (head_dim + 8) + 1]);
  }
}

TEST(Rope, ScalingRules) {
  RopeScaling linear{RopeScalingType::linear, 4.0};
  const auto plain = rope_inverse_frequencies(64, 10000.0, RopeScaling{});
  const auto scaled = rope_inverse_frequencies(64, 10000.0, linear);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_DOUBLE_EQ(scaled[i], plain[i] / 4);
  // Llama 3.1 numbers: window 8192, factors 1 and 4, factor 8.
  RopeScaling llama3{RopeScalingType::llama3, 8.0, 1.0, 4.0, 8192};
  const auto mixed = rope_inverse_frequencies(128, 500000.0, llama3);
  const auto base = rope_inverse_frequencies(128, 500000.0, RopeScaling{});
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelength = 2 * std::numbers::pi / base[i];
    if (wavelength < 8192 / 4.0) {
      EXPECT_DOUBLE_EQ(mixed[i], base[i]);
    } else if (wavelength > 8192) {
      EXPECT_DOUBLE_EQ(mixed[i], base[i] / 8);
    } else {
      EXPECT_LT(mixed[i], base[i]);
      EXPECT_GT(mixed[i], base[i] / 8);
    }
  }
}

}  // namespace
}  // namespace hlwq
