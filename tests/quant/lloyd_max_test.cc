#include "quant/lloyd_max.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"

namespace hlwq {
namespace {

constexpr CodebookKind kKinds[] = {CodebookKind::converged, CodebookKind::polarquant_compat};

std::vector<double> as_double(const std::vector<float>& values) { return {values.begin(), values.end()}; }

// Plain Lloyd step for N(0,1), written independently of the library: each centroid moves to the
// mean of its interval, E[Z | a < Z < b] = (pdf(a) - pdf(b)) / (cdf(b) - cdf(a)).
std::vector<double> plain_lloyd_step(const std::vector<double>& centroids) {
  const auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  const auto pdf = [](double x) { return std::isinf(x) ? 0.0 : std::exp(-x * x / 2) / std::sqrt(2 * M_PI); };
  std::vector<double> next(centroids.size());
  for (size_t k = 0; k < centroids.size(); ++k) {
    const double a = k == 0 ? -INFINITY : (centroids[k - 1] + centroids[k]) / 2;
    const double b = k + 1 == centroids.size() ? INFINITY : (centroids[k] + centroids[k + 1]) / 2;
    next[k] = (pdf(a) - pdf(b)) / (cdf(b) - cdf(a));
  }
  return next;
}

// Midpoint-rule integral of (z - c[q(z)])^2 pdf(z) over [-12, 12] on a fine grid: independent of
// the closed form, accurate to ~1e-9 here.
double numeric_mse(const std::vector<double>& centroids) {
  const int steps = 2'000'000;
  const double low = -12, high = 12, width = (high - low) / steps;
  double total = 0;
  size_t code = 0;
  for (int i = 0; i < steps; ++i) {
    const double z = low + (i + 0.5) * width;
    while (code + 1 < centroids.size() && z > (centroids[code] + centroids[code + 1]) / 2) ++code;
    const double error = z - centroids[code];
    total += error * error * std::exp(-z * z / 2) / std::sqrt(2 * M_PI) * width;
  }
  return total;
}

TEST(LloydMax, ConvergedMatchesHighPrecisionValues) {
  // From scripts/lloyd_max_reference.py (mpmath, 40 digits, independent of this code).
  const double mse[] = {0.363380227632419, 0.117481847829329, 0.0345477607885037, 0.00950100800819189,
                        0.0025046683556748};
  const std::vector<std::vector<double>> positive_centroids = {
      {0.797884560803},
      {0.452780034636, 1.5104176085},
      {0.245094178944, 0.756005281206, 1.34390927851, 2.15194570454},
      {0.128395029851, 0.38804829949, 0.656759118532, 0.942340456487, 1.25623119735, 1.61804638602,
       2.06901722653, 2.732589571},
      {0.0658896597708, 0.198051829669, 0.33137830576, 0.466699522977, 0.604933624009, 0.747135703688,
       0.894565117388, 1.04878331992, 1.21180438061, 1.38634033959, 1.57622807861, 1.7872332177, 2.0287283994,
       2.31773940419, 2.69111957738, 3.2607324934}};
  for (int bits = 1; bits <= 5; ++bits) {
    const Codebook codebook = lloyd_max_codebook(bits);
    // The MSE is that of the float-rounded centroids: 1e-9 relative covers it.
    EXPECT_NEAR(codebook.mse, mse[bits - 1], 1e-9 * mse[bits - 1]) << bits << " bits";
    const std::vector<double>& expected = positive_centroids[static_cast<size_t>(bits - 1)];
    const size_t half = expected.size();
    for (size_t k = 0; k < half; ++k) {
      EXPECT_NEAR(codebook.centroids[half + k], expected[k], 3e-7 * expected[k]) << bits << " bits, " << k;
    }
  }
}

TEST(LloydMax, ConvergedAgreesWithMaxTable) {
  // Max (1960) as quoted in docs HLWQ.md. The table is right to 4 significant digits for 1 and 2
  // bits only: its 3, 4 and 5 bit entries (0.03454, 0.009497, 0.002499) are below the true
  // optimum (0.034548, 0.0095010, 0.0025047; see the test above), by up to 0.23%.
  const double table[] = {0.3634, 0.1175, 0.03454, 0.009497, 0.002499};
  for (int bits = 1; bits <= 5; ++bits) {
    EXPECT_NEAR(lloyd_max_codebook(bits).mse, table[bits - 1], 2.5e-3 * table[bits - 1]) << bits << " bits";
  }
  EXPECT_NEAR(lloyd_max_codebook(1).mse, 0.3634, 0.5e-4);
  EXPECT_NEAR(lloyd_max_codebook(2).mse, 0.1175, 0.5e-4);
  // Q2 +-0.4528 +-1.5104 to 4 decimals; Q3 +-0.2451 +-0.7560 +-1.3440 +-2.1520 within 1e-4 (the
  // true values round to 1.3439 and 2.1519 at 4 decimals; Max printed 1.344 and 2.152).
  const Codebook q2 = lloyd_max_codebook(2);
  const double q2_expected[] = {-1.5104, -0.4528, 0.4528, 1.5104};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(q2.centroids[k], q2_expected[k], 0.5e-4) << k;
  const Codebook q3 = lloyd_max_codebook(3);
  const double q3_expected[] = {-2.1520, -1.3440, -0.7560, -0.2451, 0.2451, 0.7560, 1.3440, 2.1520};
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(q3.centroids[k], q3_expected[k], 1e-4) << k;
  EXPECT_NEAR(lloyd_max_codebook(1).centroids[1], std::sqrt(2 / M_PI), 1e-7);
}

TEST(LloydMax, ConvergedIsAFixedPointOfTheLloydStep) {
  for (int bits = 1; bits <= 8; ++bits) {
    const Codebook codebook = lloyd_max_codebook(bits);
    const std::vector<double> centroids = as_double(codebook.centroids);
    const std::vector<double> next = plain_lloyd_step(centroids);
    for (size_t k = 0; k < centroids.size(); ++k) {
      // Float rounding of the stored centroids (<= 3e-7 relative) bounds the change.
      EXPECT_NEAR(next[k], centroids[k], 1e-6 * std::max(1.0, std::abs(centroids[k]))) << bits << " " << k;
    }
  }
}

TEST(LloydMax, CodebooksAreAscendingSymmetricWithMidpointThresholds) {
  for (CodebookKind kind : kKinds) {
    for (int bits = 1; bits <= 8; ++bits) {
      const Codebook codebook = lloyd_max_codebook(bits, kind);
      const size_t levels = size_t{1} << bits;
      ASSERT_EQ(codebook.bits, bits);
      ASSERT_EQ(codebook.centroids.size(), levels);
      ASSERT_EQ(codebook.boundaries.size(), levels - 1);
      for (size_t k = 0; k < levels; ++k) {
        if (k > 0) {
          EXPECT_LT(codebook.centroids[k - 1], codebook.centroids[k]);
        }
        const float mirror = -codebook.centroids[levels - 1 - k];
        if (kind == CodebookKind::converged) {
          EXPECT_EQ(codebook.centroids[k], mirror) << bits << " " << k;
        } else {
          EXPECT_NEAR(codebook.centroids[k], mirror, 1e-6) << bits << " " << k;
        }
      }
      for (size_t k = 0; k + 1 < levels; ++k) {
        const double midpoint = (static_cast<double>(codebook.centroids[k]) + codebook.centroids[k + 1]) / 2;
        EXPECT_EQ(codebook.boundaries[k], static_cast<float>(midpoint));
      }
      if (kind == CodebookKind::converged) {
        EXPECT_EQ(codebook.boundaries[levels / 2 - 1], 0.0f);
      }
    }
  }
}

TEST(LloydMax, MseHalvesTwiceEachBitAndConvergedBeatsCompat) {
  double previous = 1.0;  // the MSE of coding every z as 0
  for (int bits = 1; bits <= 8; ++bits) {
    const Codebook converged = lloyd_max_codebook(bits);
    const Codebook compat = lloyd_max_codebook(bits, CodebookKind::polarquant_compat);
    // Gain per bit between 2.7x (1 bit) and 4x (high resolution), with a margin.
    EXPECT_LT(converged.mse, previous / 2.6) << bits;
    EXPECT_GT(converged.mse, previous / 4.3) << bits;
    EXPECT_LE(converged.mse, compat.mse * (1 + 1e-9)) << bits;
    previous = converged.mse;
  }
}

TEST(LloydMax, PolarquantCompatMatchesTheReferenceProcedure) {
  // Golden values from scripts/polarquant_compat_codebook.py (a numpy transcription of the
  // published procedure): float32 centroids and the MSE of the applied quantizer.
  const double mse[] = {0.36338, 0.117482, 0.0345478, 0.00951076, 0.00292344, 0.00104684, 0.0003066, 8.02866e-05};
  for (int bits = 1; bits <= 8; ++bits) {
    EXPECT_NEAR(lloyd_max_codebook(bits, CodebookKind::polarquant_compat).mse, mse[bits - 1], 1e-5 * mse[bits - 1])
        << bits;
  }
  // HLWQ.md: "Q5 MSE 0.00292 vs 0.00250 converged".
  EXPECT_NEAR(lloyd_max_codebook(5, CodebookKind::polarquant_compat).mse, 0.00292, 0.5e-5);
  const std::vector<float> q3 = {-2.15194702f, -1.34391069f, -0.75600636f, -0.245094568f,
                                 0.245094568f, 0.75600636f,  1.34391069f,  2.15194702f};
  const std::vector<float> q5 = {
      -3.55160904f,  -3.0169189f,   -2.66287255f,  -2.38290906f,  -2.14199185f, -1.92410636f, -1.72065187f,
      -1.52656233f,  -1.33867943f,  -1.15496147f,  -0.974055946f, -0.795050859f, -0.617321551f, -0.440431923f,
      -0.264068037f, -0.0879921466f, 0.0879921466f, 0.264068037f, 0.440431923f, 0.617321551f, 0.795050859f,
      0.974055946f,  1.15496147f,   1.33867943f,   1.52656233f,  1.72065187f,  1.92410636f,  2.14199185f,
      2.38290906f,   2.66287255f,   3.0169189f,    3.55160904f};
  const Codebook compat3 = lloyd_max_codebook(3, CodebookKind::polarquant_compat);
  const Codebook compat5 = lloyd_max_codebook(5, CodebookKind::polarquant_compat);
  for (size_t k = 0; k < q3.size(); ++k) EXPECT_NEAR(compat3.centroids[k], q3[k], 1e-6) << k;
  for (size_t k = 0; k < q5.size(); ++k) EXPECT_NEAR(compat5.centroids[k], q5[k], 1e-6) << k;
}

TEST(LloydMax, ClosedFormMseMatchesNumericIntegration) {
  // An arbitrary (not Lloyd-optimal) quantizer, and two codebooks.
  const std::vector<double> uneven = {-2.5, -0.9, -0.1, 0.3, 1.7};
  EXPECT_NEAR(gaussian_quantizer_mse(uneven), numeric_mse(uneven), 1e-8);
  for (int bits : {2, 6}) {
    const std::vector<double> centroids = as_double(lloyd_max_codebook(bits).centroids);
    EXPECT_NEAR(gaussian_quantizer_mse(centroids), numeric_mse(centroids), 1e-8) << bits;
  }
  EXPECT_NEAR(gaussian_quantizer_mse(std::vector<double>{0.0}), 1.0, 1e-15);
}

TEST(LloydMax, ClosedFormMseMatchesMonteCarlo) {
  std::mt19937_64 generator(20260401);
  std::normal_distribution<double> normal;
  const int samples = 1 << 19;
  std::vector<float> draws(samples);
  for (float& draw : draws) draw = static_cast<float>(normal(generator));
  for (CodebookKind kind : kKinds) {
    for (int bits = 1; bits <= 8; ++bits) {
      const Codebook codebook = lloyd_max_codebook(bits, kind);
      double sum = 0, sum_of_squares = 0;
      for (float z : draws) {
        const double error = z - codebook.centroids[nearest_code(codebook, z)];
        sum += error * error;
        sum_of_squares += error * error * error * error;
      }
      const double mean = sum / samples;
      const double standard_error = std::sqrt((sum_of_squares / samples - mean * mean) / samples);
      // 5 standard errors: fails by chance with probability < 1e-6 per case.
      EXPECT_NEAR(mean, codebook.mse, 5 * standard_error) << bits << " bits, kind " << codebook_kind_name(kind);
    }
  }
}

TEST(LloydMax, NearestCodeIsTheNearestCentroid) {
  std::mt19937 generator(7);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  for (int bits : {1, 2, 5, 8}) {
    const Codebook codebook = lloyd_max_codebook(bits);
    for (int trial = 0; trial < 20000; ++trial) {
      const float z = normal(generator);
      const int code = nearest_code(codebook, z);
      const double distance = std::abs(z - static_cast<double>(codebook.centroids[code]));
      for (size_t k = 0; k < codebook.centroids.size(); ++k) {
        // Ties between two centroids may go either way only within float rounding of the midpoint.
        ASSERT_LE(distance, std::abs(z - static_cast<double>(codebook.centroids[k])) + 1e-6) << z;
      }
    }
    // A value exactly on a threshold goes to the lower code; the extremes to the end codes.
    const size_t levels = codebook.centroids.size();
    for (size_t k = 0; k + 1 < levels; ++k) EXPECT_EQ(nearest_code(codebook, codebook.boundaries[k]), k);
    EXPECT_EQ(nearest_code(codebook, -std::numeric_limits<float>::infinity()), 0);
    EXPECT_EQ(nearest_code(codebook, std::numeric_limits<float>::infinity()), levels - 1);
    EXPECT_EQ(nearest_code(codebook, std::numeric_limits<float>::quiet_NaN()), 0);
  }
}

TEST(LloydMax, UniformLevelsAreThePapersAbsmaxIntegers) {
  // Paper eq. 1: q = round(x / max|x| * (2^(b-1) - 1)) in -2^(b-1) .. 2^(b-1) - 1, so code k stands
  // for the integer k - 2^(b-1) in units of max|x| / (2^(b-1) - 1).
  const std::vector<float> q2 = {-2.0f, -1.0f, 0.0f, 1.0f};
  EXPECT_EQ(lloyd_max_codebook(2, CodebookKind::uniform).centroids, q2);
  const std::vector<float> q3 = {-4.0f / 3, -1.0f, -2.0f / 3, -1.0f / 3, 0.0f, 1.0f / 3, 2.0f / 3, 1.0f};
  EXPECT_EQ(lloyd_max_codebook(3, CodebookKind::uniform).centroids, q3);
  std::mt19937 generator(11);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int bits = 2; bits <= 8; ++bits) {
    const Codebook codebook = lloyd_max_codebook(bits, CodebookKind::uniform);
    const int half = 1 << (bits - 1);
    ASSERT_EQ(codebook.centroids.size(), size_t{1} << bits);
    ASSERT_EQ(codebook.boundaries.size(), (size_t{1} << bits) - 1);
    EXPECT_EQ(codebook.centroids[0], static_cast<float>(-half / (half - 1.0))) << bits;
    EXPECT_EQ(codebook.centroids[1], -1.0f) << bits;
    EXPECT_EQ(codebook.centroids[static_cast<size_t>(half)], 0.0f) << bits;
    EXPECT_EQ(codebook.centroids.back(), 1.0f) << bits;
    for (size_t k = 1; k < codebook.centroids.size(); ++k) {
      // Evenly spaced: every step is 1 / (2^(b-1) - 1) up to float rounding.
      EXPECT_NEAR(codebook.centroids[k] - codebook.centroids[k - 1], 1.0 / (half - 1), 1e-6) << bits << " " << k;
      const double midpoint = (static_cast<double>(codebook.centroids[k - 1]) + codebook.centroids[k]) / 2;
      EXPECT_EQ(codebook.boundaries[k - 1], static_cast<float>(midpoint));
    }
    // On [-1, 1] the nearest level is the paper's rounding (away from float-rounding ties); the
    // lowest code (below -1) is never the nearest.
    for (int trial = 0; trial < 20000; ++trial) {
      const float x = unit(generator);
      const double scaled = static_cast<double>(x) * (half - 1);
      if (std::abs(scaled - std::floor(scaled) - 0.5) < 1e-4) continue;
      const int code = nearest_code(codebook, x);
      ASSERT_EQ(code - half, std::lround(scaled)) << bits << " bits, x " << x;
      ASSERT_GE(code, 1);
    }
    EXPECT_EQ(nearest_code(codebook, -1.0f), 1) << bits;
    EXPECT_EQ(nearest_code(codebook, 0.0f), half) << bits;
    EXPECT_EQ(nearest_code(codebook, 1.0f), 2 * half - 1) << bits;
  }
  for (int bits : {0, 1, 9}) {
    EXPECT_THROW(lloyd_max_codebook(bits, CodebookKind::uniform), Error) << bits;
    EXPECT_THROW(uniform_absmax_levels(bits), Error) << bits;
  }
  EXPECT_STREQ(codebook_kind_name(CodebookKind::uniform), "uniform");
}

TEST(LloydMax, RejectsBadArguments) {
  for (int bits : {-1, 0, 9, 16}) {
    EXPECT_THROW(lloyd_max_codebook(bits), Error) << bits;
  }
  EXPECT_THROW(gaussian_quantizer_mse(std::vector<double>{}), Error);
  EXPECT_THROW(gaussian_quantizer_mse(std::vector<double>{1.0, -1.0}), Error);
  EXPECT_THROW(gaussian_quantizer_mse(std::vector<double>{0.0, NAN}), Error);
}

}  // namespace
}  // namespace hlwq
