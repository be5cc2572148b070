// floats_to_f16 equals the scalar float_to_f16 bit for bit on every compiled SIMD target: random
// values of many scales, the exact halfway cases (ties to even), subnormals, overflow, infinities
// and signed zeros; NaNs stay NaN.
#include "core/f16_rounding.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "hwy/targets.h"
#include "test_util.h"

namespace hlwq {
namespace {

std::vector<float> hard_values() {
  std::vector<float> values;
  for (float scale : {1e-9f, 1e-7f, 3e-5f, 0.01f, 1.0f, 300.0f, 60000.0f, 1e6f}) {
    for (float value : random_normal(101, static_cast<uint32_t>(values.size()) + 7, scale)) values.push_back(value);
  }
  // Every f16 value's neighbourhood: the value, the halfway points to its neighbours (exact in
  // float: ties go to the even mantissa) and one float ulp either side of them.
  for (uint32_t half = 0; half < 0x7c00; half += 13) {
    const float value = f16_to_float(static_cast<uint16_t>(half));
    const float next = f16_to_float(static_cast<uint16_t>(half + 1));
    const float middle = value + (next - value) / 2;
    for (float v : {value, middle, std::nextafter(middle, 0.0f), std::nextafter(middle, 1e9f)}) {
      values.push_back(v);
      values.push_back(-v);
    }
  }
  const float infinity = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 70000.0f, 3e38f, infinity, -infinity, 5.96e-8f,
                  2.98e-8f, 2.99e-8f, 1e-45f}) {
    values.push_back(v);
  }
  return values;
}

TEST(FloatsToF16, EqualsTheScalarRoundingOnEveryTarget) {
  const std::vector<float> values = hard_values();
  ASSERT_GT(values.size(), 15000u);
  std::vector<uint16_t> expected(values.size());
  for (size_t i = 0; i < values.size(); ++i) expected[i] = float_to_f16(values[i]);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    // Offsets 0..2 into the array: whole vectors and tails of every length.
    for (size_t offset = 0; offset < 3; ++offset) {
      std::vector<uint16_t> out(values.size() - offset, 0x1234);
      floats_to_f16(std::span(values).subspan(offset), out);
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_EQ(out[i], expected[i + offset]) << hwy::TargetName(target) << ": " << values[i + offset];
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(FloatsToF16, KeepsNaNsAndChecksSizes) {
  std::vector<float> values = random_normal(37, 3);
  values[2] = std::numeric_limits<float>::quiet_NaN();
  values[35] = -std::numeric_limits<float>::quiet_NaN();
  std::vector<uint16_t> out(values.size());
  floats_to_f16(values, out);
  EXPECT_TRUE(std::isnan(f16_to_float(out[2])));
  EXPECT_TRUE(std::isnan(f16_to_float(out[35])));
  EXPECT_EQ(out[0], float_to_f16(values[0]));
  EXPECT_THROW(floats_to_f16(values, std::span(out).first(36)), Error);
}

}  // namespace
}  // namespace hlwq
