#include "quant/random_signs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace hlwq {
namespace {

TEST(RandomSigns, AreReproducibleAndPlusMinusOne) {
  const std::vector<float> signs = random_signs(1234, 4096);
  EXPECT_EQ(signs, random_signs(1234, 4096));
  EXPECT_NE(signs, random_signs(1235, 4096));
  int negative = 0;
  for (float sign : signs) {
    ASSERT_TRUE(sign == 1.0f || sign == -1.0f);
    negative += sign < 0;
  }
  // Binomial(4096, 1/2): mean 2048, standard deviation 32; 5 sigma.
  EXPECT_NEAR(negative, 2048, 160);
}

TEST(RandomSigns, PrefixIsStable) {
  // A longer request extends, never reshuffles, the sequence (column i always gets the same sign).
  const std::vector<float> short_signs = random_signs(99, 100);
  const std::vector<float> long_signs = random_signs(99, 1000);
  EXPECT_TRUE(std::equal(short_signs.begin(), short_signs.end(), long_signs.begin()));
}

TEST(RandomSigns, MatchesSplitMix64GoldenValues) {
  // splitmix64 with seed 0 yields 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f,
  // 0xf88bb8a8724c81ec, ... (the published reference sequence): top bits 1, 0, 0, 1.
  const std::vector<float> signs = random_signs(0, 4);
  EXPECT_EQ(signs, (std::vector<float>{-1.0f, 1.0f, 1.0f, -1.0f}));
  // Neighbouring columns are not correlated: lag-1 agreement rate near 1/2.
  const std::vector<float> many = random_signs(7, 1 << 16);
  int agree = 0;
  for (size_t i = 1; i < many.size(); ++i) agree += many[i] == many[i - 1];
  EXPECT_NEAR(agree, (1 << 15), 5 * 128);
}

}  // namespace
}  // namespace hlwq
