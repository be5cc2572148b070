// Trellis codes (quant/trellis.h): the codebook is a permutation of Gaussian quantiles, the Viterbi
// encoder finds the best walk (checked by enumerating every walk of small trellises), decoding
// gives back what the encoder scored, bad parameters are refused, and on N(0, 1) data the codes sit
// between Lloyd-Max and the rate-distortion bound at 2, 3 and 4 bits a value, within 1 dB of it.
#include "quant/trellis.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "hwy/targets.h"
#include "quant/lloyd_max.h"
#include "test_util.h"

namespace hlwq {
namespace {

double squared_error(std::span<const float> a, std::span<const float> b) {
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) total += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return total;
}

TEST(Trellis, CodebookIsAPermutationOfGaussianQuantiles) {
  for (const int bits : {4, 10, 16}) {
    std::vector<float> codebook = trellis_codebook(bits);
    ASSERT_EQ(codebook.size(), size_t{1} << bits);
    double sum = 0, squares = 0;
    for (const float v : codebook) sum += v, squares += static_cast<double>(v) * v;
    EXPECT_NEAR(sum / codebook.size(), 0.0, 1e-6) << bits;
    EXPECT_LT(squares / codebook.size(), 1.0) << bits;
    EXPECT_GT(squares / codebook.size(), bits == 4 ? 0.8 : 0.99) << bits;
    // Neighbouring states do not hold neighbouring quantiles (the hash scatters them).
    if (bits == 16) {
      int close = 0;
      for (size_t s = 1; s < codebook.size(); ++s) close += std::fabs(codebook[s] - codebook[s - 1]) < 0.01f;
      EXPECT_LT(close, 1000);
    }
    std::sort(codebook.begin(), codebook.end());
    const double states = static_cast<double>(codebook.size());
    for (size_t i = 0; i < codebook.size(); i += codebook.size() / 16 + 1) {
      EXPECT_FLOAT_EQ(codebook[i], static_cast<float>(normal_quantile((i + 0.5) / states))) << bits << " " << i;
    }
  }
}

// Every walk of a small trellis, scored by brute force: the encoder's walk must score the least.
TEST(Trellis, ViterbiFindsTheBestWalkOfSmallTrellises) {
  for (const auto& [state_bits, bits] : {std::pair{4, 1}, std::pair{4, 2}, std::pair{5, 3}}) {
    const TrellisParams params{state_bits, bits};
    const std::vector<float> codebook = trellis_codebook(state_bits);
    for (uint32_t seed = 0; seed < 5; ++seed) {
      const std::vector<float> values = random_normal(4, 300 + seed);
      const TrellisWalk walk = trellis_encode(params, codebook, values);
      std::vector<float> decoded(values.size());
      trellis_decode(params, codebook, walk, decoded);
      const double found = squared_error(decoded, values);
      double best = INFINITY;
      const uint32_t walks = 1u << (state_bits + 3 * bits);
      for (uint32_t w = 0; w < walks; ++w) {
        TrellisWalk candidate;
        candidate.first_state = w & ((1u << state_bits) - 1);
        for (int t = 0; t < 3; ++t) {
          candidate.steps.push_back(static_cast<uint8_t>((w >> (state_bits + t * bits)) & ((1u << bits) - 1)));
        }
        std::vector<float> out(values.size());
        trellis_decode(params, codebook, candidate, out);
        best = std::min(best, squared_error(out, values));
      }
      EXPECT_NEAR(found, best, 1e-5 * (1 + best)) << "L " << state_bits << " k " << bits << " seed " << seed;
    }
  }
}

// The SIMD encoder against the plain scalar recursion: the same walk, value for value, on trellises
// large enough for every vector path (groups and branches wider and narrower than the vectors).
TEST(Trellis, SimdViterbiEqualsTheScalarReference) {
  for (const auto& [state_bits, bits] : {std::pair{12, 4}, std::pair{12, 2}, std::pair{10, 3}, std::pair{14, 4},
                                         std::pair{8, 5}, std::pair{6, 1}, std::pair{9, 8}}) {
    const TrellisParams params{state_bits, bits};
    const std::vector<float> codebook = trellis_codebook(state_bits);
    for (const size_t count : {size_t{1}, size_t{2}, size_t{3}, size_t{200}}) {
      const std::vector<float> values = random_normal(count, 50 + state_bits + bits + static_cast<uint32_t>(count));
      const TrellisWalk fast = trellis_encode(params, codebook, values);
      const TrellisWalk reference = trellis_encode_reference(params, codebook, values);
      EXPECT_EQ(fast.first_state, reference.first_state) << "L " << state_bits << " k " << bits << " n " << count;
      EXPECT_EQ(fast.steps, reference.steps) << "L " << state_bits << " k " << bits << " n " << count;
    }
  }
}

// Every SIMD target Highway built gives the reference's walk and the same end cost of every state,
// bit for bit: a multiply-add fused on the targets that have one (and not elsewhere) rounds
// differently, which on real weight rows sometimes picks another walk of nearly the same error.
TEST(Trellis, EverySimdTargetGivesTheReferenceWalkAndCosts) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (const auto& [state_bits, bits] : {std::pair{12, 3}, std::pair{12, 4}, std::pair{10, 2}}) {
    const TrellisParams params{state_bits, bits};
    const std::vector<float> codebook = trellis_codebook(state_bits);
    const std::vector<float> values = random_normal(300, 900 + state_bits + bits);
    std::vector<float> reference_costs, costs;
    const TrellisWalk reference = trellis_encode_reference(params, codebook, values, &reference_costs);
    ASSERT_EQ(reference_costs.size(), codebook.size());
    for (const int64_t target : targets) {
      hwy::SetSupportedTargetsForTest(target);
      const TrellisWalk walk = trellis_encode(params, codebook, values, &costs);
      EXPECT_EQ(walk.first_state, reference.first_state) << hwy::TargetName(target) << " L " << state_bits;
      EXPECT_EQ(walk.steps, reference.steps) << hwy::TargetName(target) << " L " << state_bits << " k " << bits;
      size_t differing = 0;
      for (size_t s = 0; s < costs.size(); ++s) differing += costs[s] != reference_costs[s];
      EXPECT_EQ(differing, 0u) << hwy::TargetName(target) << " L " << state_bits << " k " << bits;
    }
    hwy::SetSupportedTargetsForTest(0);
  }
}

TEST(Trellis, DecodeFollowsTheStreamOfBits) {
  const TrellisParams params{8, 3};
  const std::vector<float> codebook = trellis_codebook(8);
  TrellisWalk walk;
  walk.first_state = 0xA5;
  walk.steps = {1, 7, 0, 4};
  std::vector<float> out(5);
  trellis_decode(params, codebook, walk, out);
  uint32_t state = 0xA5;
  EXPECT_EQ(out[0], codebook[state]);
  for (size_t t = 0; t < walk.steps.size(); ++t) {
    state = ((state << 3) | walk.steps[t]) & 0xFF;
    EXPECT_EQ(out[t + 1], codebook[state]);
  }
  EXPECT_EQ(trellis_walk_bits(params, 5), 8 + 4 * 3);
}

TEST(Trellis, RefusesBadParameters) {
  const std::vector<float> codebook = trellis_codebook(8);
  const std::vector<float> values = random_normal(16, 5);
  EXPECT_THROW(trellis_encode({8, 0}, codebook, values), Error);
  EXPECT_THROW(trellis_encode({8, 8}, codebook, values), Error);
  EXPECT_THROW(trellis_encode({21, 2}, codebook, values), Error);
  EXPECT_THROW(trellis_encode({9, 2}, codebook, values), Error);  // codebook of the wrong size
  EXPECT_THROW(trellis_encode({8, 2}, codebook, std::span<const float>()), Error);
  EXPECT_THROW(trellis_codebook(1), Error);
  TrellisWalk walk;
  walk.steps = {1, 2};
  std::vector<float> small(2);
  EXPECT_THROW(trellis_decode({8, 2}, codebook, walk, small), Error);
}

// SQNR in dB of trellis codes of `blocks` blocks of 256 N(0, 1) values, each block scaled by its
// least-squares gain after encoding (as HLWQ stores a gain per block).
double gaussian_sqnr(const TrellisParams& params, int blocks) {
  const std::vector<float> codebook = trellis_codebook(params.state_bits);
  double signal = 0, noise = 0;
  for (int b = 0; b < blocks; ++b) {
    const std::vector<float> values = random_normal(256, 700 + b);
    const TrellisWalk walk = trellis_encode(params, codebook, values);
    std::vector<float> decoded(values.size());
    trellis_decode(params, codebook, walk, decoded);
    double dot = 0, norm = 0;
    for (size_t i = 0; i < values.size(); ++i) dot += values[i] * decoded[i], norm += decoded[i] * decoded[i];
    const double gain = dot / norm;
    for (size_t i = 0; i < values.size(); ++i) {
      signal += static_cast<double>(values[i]) * values[i];
      noise += (values[i] - gain * decoded[i]) * (values[i] - gain * decoded[i]);
    }
  }
  return 10 * std::log10(signal / noise);
}

TEST(Trellis, GaussianCodesBeatLloydMaxAndStayUnderTheBound) {
  for (const int bits : {2, 3, 4}) {
    const TrellisParams params{16, bits};
    const double sqnr = gaussian_sqnr(params, 8);
    const double lloyd_max = -10 * std::log10(lloyd_max_codebook(bits).mse);
    // The bound at the walk's own rate: k bits a value plus the first state's L - k bits over 256.
    const double rate = static_cast<double>(trellis_walk_bits(params, 256)) / 256;
    const double bound = 6.0206 * rate;
    std::printf("    trellis L 16 k %d: %.2f dB over 2048 N(0,1) values (Lloyd-Max %.2f, bound at %.3f bits %.2f)\n",
                bits, sqnr, lloyd_max, rate, bound);
    EXPECT_GT(sqnr, lloyd_max + 1.0) << bits;
    // Within 1 dB of the bound at k bits a value (6.02 k dB), and under the bound at the walk's rate.
    EXPECT_GT(sqnr, 6.0206 * bits - 1.0) << bits;
    EXPECT_LT(sqnr, bound) << bits;
  }
}

}  // namespace
}  // namespace hlwq
