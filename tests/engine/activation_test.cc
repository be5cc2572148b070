// SwiGLU gate against the written-out formula.
#include "engine/activation.h"

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

}  // namespace
}  // namespace hlwq
