#include "quant/hadamard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "hwy/targets.h"
#include "test_util.h"

namespace hlwq {
namespace {

double l1_norm(const std::vector<float>& values) {
  double sum = 0;
  for (float value : values) sum += std::abs(value);
  return sum;
}

// Float rounding bound of the butterflies: each of the log2(n) stages and the final scaling adds
// at most one rounding, whose size is bounded by the unit roundoff times the l1 norm (the largest
// possible magnitude of any partial sum), scaled by 1/sqrt(n).
double rounding_bound(size_t size, double l1) {
  return (std::log2(static_cast<double>(size)) + 2) * std::ldexp(1.0, -24) * l1 / std::sqrt(static_cast<double>(size));
}

TEST(Hadamard, MatchesTheMatrixProductForEverySize) {
  for (size_t size = 1; size <= 1024; size *= 2) {
    const std::vector<float> input = random_normal(size, static_cast<uint32_t>(size) + 11);
    std::vector<float> fast = input, reference(size);
    walsh_hadamard_transform(fast);
    walsh_hadamard_transform_reference(input, reference);
    const double bound = rounding_bound(size, l1_norm(input));
    for (size_t i = 0; i < size; ++i) ASSERT_NEAR(fast[i], reference[i], bound) << "size " << size << " at " << i;
  }
}

TEST(Hadamard, SmallCasesFollowTheSylvesterDefinition) {
  std::vector<float> one = {3.5f};
  walsh_hadamard_transform(one);
  EXPECT_EQ(one[0], 3.5f);
  std::vector<float> two = {1.0f, 2.0f};
  walsh_hadamard_transform(two);
  EXPECT_NEAR(two[0], 3 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(two[1], -1 / std::sqrt(2.0), 1e-6);
  // H_4 = 1/2 [[1,1,1,1],[1,-1,1,-1],[1,1,-1,-1],[1,-1,-1,1]].
  std::vector<float> four = {1.0f, 2.0f, 3.0f, 5.0f};
  walsh_hadamard_transform(four);
  const float expected[] = {11 / 2.0f, -3 / 2.0f, -5 / 2.0f, 1 / 2.0f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(four[static_cast<size_t>(i)], expected[i], 1e-6) << i;
  // A one-hot input gives the matching row of H: all entries +-1/sqrt(n).
  std::vector<float> hot(64, 0.0f);
  hot[5] = 1.0f;
  walsh_hadamard_transform(hot);
  for (float value : hot) EXPECT_NEAR(std::abs(value), 0.125f, 1e-7);
}

TEST(Hadamard, IsSelfInverseAndOrthonormal) {
  for (size_t size : {32u, 128u, 1024u}) {
    const std::vector<float> input = random_normal(size, 5);
    std::vector<float> values = input;
    walsh_hadamard_transform(values);
    double input_energy = 0, output_energy = 0;
    for (size_t i = 0; i < size; ++i) {
      input_energy += static_cast<double>(input[i]) * input[i];
      output_energy += static_cast<double>(values[i]) * values[i];
    }
    EXPECT_NEAR(output_energy, input_energy, 1e-5 * input_energy);
    walsh_hadamard_transform(values);
    const double bound = 2 * rounding_bound(size, std::sqrt(static_cast<double>(size)) * std::sqrt(input_energy));
    for (size_t i = 0; i < size; ++i) ASSERT_NEAR(values[i], input[i], bound) << size << " " << i;
  }
}

// The SIMD butterflies perform exactly the additions of the plain loop (strides 1, 2, 4, ...), so
// every SIMD target gives the same bits as this scalar version.
std::vector<float> plain_butterflies(std::vector<float> values) {
  const size_t size = values.size();
  for (size_t stride = 1; stride < size; stride *= 2) {
    for (size_t start = 0; start < size; start += 2 * stride) {
      for (size_t i = start; i < start + stride; ++i) {
        const float x = values[i], y = values[i + stride];
        values[i] = x + y;
        values[i + stride] = x - y;
      }
    }
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(size)));
  for (float& value : values) value *= scale;
  return values;
}

TEST(Hadamard, EverySimdTargetGivesTheBitsOfThePlainButterflies) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    for (size_t size = 1; size <= 1024; size *= 2) {
      const std::vector<float> input = random_normal(size, 77);
      std::vector<float> fast = input;
      walsh_hadamard_transform(fast);
      EXPECT_EQ(fast, plain_butterflies(input)) << hwy::TargetName(target) << ", size " << size;
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Hadamard, RejectsSizesThatAreNotPowersOfTwo) {
  for (size_t size : {0u, 3u, 6u, 100u, 1000u}) {
    std::vector<float> values(size, 1.0f), output(size);
    EXPECT_THROW(walsh_hadamard_transform(values), Error) << size;
    EXPECT_THROW(walsh_hadamard_transform_reference(values, output), Error) << size;
  }
}

}  // namespace
}  // namespace hlwq
