// SwiGLU and GeGLU gates against the written-out formula / torch's values.
#include "ops/activation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"

namespace hlwq {
namespace {

TEST(SiluMul, MatchesTheFormula) {
  const std::vector<float> gate = random_normal(16, 4, 3.0f), up = random_normal(16, 5);
  std::vector<float> out(16);
  silu_mul(gate, up, out);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(out[i], gate[i] / (1 + std::exp(-gate[i])) * up[i], 1e-5);
}

// The SIMD exp against the formula in double, relative to |silu(g) up| (plus 1e-36 |up|: below
// g = -88 the result is 0), whole vectors and a tail (1,541 values), gates from -120 to 120 (past
// float exp's overflow at -g = 88.7), in place.
TEST(SiluMul, StaysWithinAFewRoundingsOfTheFormulaInDouble) {
  const size_t count = 1541;
  std::vector<float> gate = random_normal(count, 8, 6.0f);
  const std::vector<float> up = random_normal(count, 9);
  for (size_t i = 0; i < 40; ++i) gate[i * 37] = -120.0f + 6.0f * static_cast<float>(i);
  const std::vector<float> original = gate;
  silu_mul(gate, up, gate);
  for (size_t i = 0; i < count; ++i) {
    const double g = original[i];
    const double expected = g / (1.0 + std::exp(-g)) * up[i];
    EXPECT_NEAR(gate[i], expected, 4e-7 * std::fabs(expected) + 1e-36 * std::fabs(up[i])) << "gate " << g;
  }
}

TEST(SiluMul, PropagatesNaN) {
  std::vector<float> gate = random_normal(35, 10), up = random_normal(35, 11), out(35);  // a vector and a tail
  gate[3] = gate[34] = std::nanf("");
  silu_mul(gate, up, out);
  EXPECT_TRUE(std::isnan(out[3]));
  EXPECT_TRUE(std::isnan(out[34]));
  EXPECT_FALSE(std::isnan(out[4]));
}

// torch.nn.functional.gelu(x, approximate="tanh") in float64 at 1, -1, 3, -0.5.
TEST(GeluTanhMul, MatchesTorchAndIsCloseToTheErfGelu) {
  const std::vector<float> points = {1.0f, -1.0f, 3.0f, -0.5f}, ones(4, 1.0f);
  const std::vector<double> torch_values = {0.8411919906082768, -0.15880800939172324, 2.996362607918227,
                                            -0.15428599017485606};
  std::vector<float> out(4);
  gelu_tanh_mul(points, ones, out);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], torch_values[i], 1e-6);
  // The tanh form stays within 1e-3 of the exact x * Phi(x); the up factor multiplies.
  const std::vector<float> gate = random_normal(64, 6, 3.0f), up = random_normal(64, 7);
  std::vector<float> gated(64);
  gelu_tanh_mul(gate, up, gated);
  for (int i = 0; i < 64; ++i) {
    const double exact = 0.5 * gate[i] * (1 + std::erf(gate[i] / std::sqrt(2.0)));
    EXPECT_NEAR(gated[i], exact * up[i], 1e-3 * (1 + std::fabs(up[i])));
  }
}

}  // namespace
}  // namespace hlwq
