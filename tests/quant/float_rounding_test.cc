#include "quant/float_rounding.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace hlwq {
namespace {

// round_half_even must equal std::rint (default rounding mode) bit for bit, sign of zero included.
TEST(FloatRounding, RoundHalfEvenEqualsRint) {
  auto expect_rint = [](float value) {
    const float expected = std::rint(value);
    const float got = round_half_even(value);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << value;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(expected)) << value;
    }
  };
  constexpr float kInfinity = std::numeric_limits<float>::infinity();
  const float edge_cases[] = {
      0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 7.5f, -7.5f, 0.49999997f, -0.3f,
      8388607.5f, 8388608.0f, -8388609.0f, 0x1p22f + 0.5f, 1e30f, -1e30f, kInfinity, -kInfinity,
      std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min()};
  for (float value : edge_cases) {
    expect_rint(value);
  }
  std::mt19937 generator(3);
  std::uniform_real_distribution<float> code(-20.0f, 300.0f);
  std::uniform_int_distribution<int> tie(-300, 300);
  for (int i = 0; i < 200000; ++i) {
    expect_rint(code(generator));
    expect_rint(static_cast<float>(tie(generator)) + 0.5f);
    expect_rint(std::bit_cast<float>(static_cast<uint32_t>(generator())));  // every magnitude
  }
}

TEST(FloatRounding, RoundToDtypeIsNearestEven) {
  EXPECT_EQ(round_to_dtype(1.0f + 0x1p-8f, DType::BF16), 1.0f);                      // tie -> even
  EXPECT_EQ(round_to_dtype(1.0f + 0x1p-7f + 0x1p-8f, DType::BF16), 1.0f + 0x1p-6f);  // tie -> even (up)
  EXPECT_EQ(round_to_dtype(1.0f + 0x1p-11f, DType::F16), 1.0f);
  EXPECT_EQ(round_to_dtype(0.1f, DType::F32), 0.1f);
  EXPECT_TRUE(std::isinf(round_to_dtype(70000.0f, DType::F16)));
}

}  // namespace
}  // namespace hlwq
