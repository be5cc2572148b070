// RMSNorm against the written-out formula.
#include "ops/rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"

namespace hlwq {
namespace {

TEST(RmsNorm, NormalizesEachRow) {
  const std::vector<float> x = random_normal(3 * 8, 1, 2.0f);
  const std::vector<float> weight = random_normal(8, 2);
  std::vector<float> out(x.size());
  rms_norm(x, weight, 1e-5, out);
  for (int row = 0; row < 3; ++row) {
    double squares = 0;
    for (int i = 0; i < 8; ++i) squares += x[row * 8 + i] * x[row * 8 + i];
    const double scale = 1 / std::sqrt(squares / 8 + 1e-5);
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(out[row * 8 + i], weight[i] * x[row * 8 + i] * scale, 1e-5);
  }
}

}  // namespace
}  // namespace hlwq
