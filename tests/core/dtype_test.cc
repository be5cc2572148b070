#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace hlwq {
namespace {

TEST(DType, NamesRoundTrip) {
  for (DType dtype : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                      DType::I8, DType::U64, DType::U32, DType::U16, DType::U8, DType::BOOL}) {
    auto parsed = parse_dtype(dtype_name(dtype));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_FALSE(parse_dtype("F8_E4M3X").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
}

// Every one of the 65536 f16 bit patterns survives f16 -> f32 -> f16 (NaNs stay NaN).
TEST(DType, F16RoundTripsEveryBitPattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float value = f16_to_float(static_cast<uint16_t>(bits));
    const uint16_t back = float_to_f16(value);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(f16_to_float(back)));
    } else {
      EXPECT_EQ(back, bits) << "bits " << bits;
    }
  }
}

// Rounding to f16 picks the nearest representable value (ties to even), checked against
// a brute-force search over neighbours on random floats of every magnitude.
TEST(DType, F16RoundsToNearest) {
  std::mt19937 generator(7);
  std::uniform_real_distribution<float> exponent(-26.0f, 16.5f);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) {
    const float value = std::ldexp(mantissa(generator), static_cast<int>(exponent(generator))) *
                        (i % 2 ? -1.0f : 1.0f);
    const uint16_t bits = float_to_f16(value);
    const float rounded = f16_to_float(bits);
    if (std::isinf(rounded)) {
      EXPECT_GE(std::fabs(value), 65520.0f);
      continue;
    }
    const float below = f16_to_float(static_cast<uint16_t>(bits - 1));
    const float above = f16_to_float(static_cast<uint16_t>(bits + 1));
    const float error = std::fabs(rounded - value);
    if ((bits & 0x7fff) != 0) EXPECT_LE(error, std::fabs(below - value)) << value;
    if ((bits & 0x7fff) != 0x7bff) EXPECT_LE(error, std::fabs(above - value)) << value;
  }
}

TEST(DType, BF16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::infinity()))));
}

TEST(DType, ConvertToFloatAndBack) {
  std::mt19937 generator(11);
  std::normal_distribution<float> normal;
  std::vector<float> values(1000);
  for (float& value : values) value = normal(generator);
  for (DType dtype : {DType::F64, DType::F32, DType::F16, DType::BF16}) {
    std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
    convert_from_float(values, dtype, bytes);
    std::vector<float> back(values.size());
    convert_to_float(dtype, bytes, back);
    const float tolerance = dtype == DType::BF16 ? 1.0f / 128 : dtype == DType::F16 ? 1.0f / 1024 : 0.0f;
    for (size_t i = 0; i < values.size(); ++i)
      EXPECT_LE(std::fabs(back[i] - values[i]), tolerance * std::fabs(values[i])) << dtype_name(dtype);
  }
}

}  // namespace
}  // namespace hlwq
