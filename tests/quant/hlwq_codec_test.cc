#include "quant/hlwq_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "hwy/targets.h"
#include "quant/code_packing.h"
#include "quant/hadamard.h"
#include "quant/random_signs.h"
#include "test_util.h"

namespace hlwq {
namespace {

struct Quantized {
  std::vector<uint8_t> codes;
  std::vector<uint16_t> norms;
};

// Designated initializers that skip fields warn under -Wextra, hence a plain function.
HlwqParams make_params(int bits, int block = 128, std::optional<uint64_t> sign_seed = std::nullopt,
                       BlockGain gain = BlockGain::norm, CodebookKind codebook = CodebookKind::converged,
                       Rotation rotation = Rotation::hadamard) {
  HlwqParams params;
  params.bits = bits;
  params.block = block;
  params.sign_seed = sign_seed;
  params.gain = gain;
  params.codebook = codebook;
  params.rotation = rotation;
  return params;
}

// The paper's ablation variants (docs/FORMAT.md): (a) absmax, (b) + Hadamard, (c) + Lloyd-Max
// only, (d) both.
HlwqParams ablation_params(char variant, int bits, int block = 128, BlockGain gain = BlockGain::norm) {
  const bool rotate = variant == 'b' || variant == 'd';
  const bool lloyd_max = variant == 'c' || variant == 'd';
  return make_params(bits, block, std::nullopt, gain, lloyd_max ? CodebookKind::converged : CodebookKind::uniform,
                     rotate ? Rotation::hadamard : Rotation::none);
}

std::span<const std::byte> as_bytes_of(const std::vector<float>& values) { return std::as_bytes(std::span(values)); }

Quantized quantize(const HlwqCodec& codec, const std::vector<float>& weights, int threads = 1) {
  const int64_t rows = static_cast<int64_t>(weights.size()) / codec.layout().columns;
  Quantized result{std::vector<uint8_t>(static_cast<size_t>(rows) * codec.layout().code_bytes),
                   std::vector<uint16_t>(static_cast<size_t>(rows * codec.layout().blocks))};
  ThreadPool pool(threads);
  codec.quantize_matrix(DType::F32, as_bytes_of(weights), rows, result.codes, result.norms, pool);
  return result;
}

std::vector<float> dequantize(const HlwqCodec& codec, const Quantized& quantized, int threads = 1) {
  const int64_t rows = static_cast<int64_t>(quantized.norms.size()) / codec.layout().blocks;
  std::vector<float> weights(static_cast<size_t>(rows * codec.layout().columns));
  ThreadPool pool(threads);
  codec.dequantize_matrix(quantized.codes, quantized.norms, rows, weights, pool);
  return weights;
}

double squared_error(std::span<const float> a, std::span<const float> b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return sum;
}

double energy(std::span<const float> values) {
  double sum = 0;
  for (float value : values) sum += static_cast<double>(value) * value;
  return sum;
}

// Signal-to-quantization-noise ratio in dB.
double sqnr_db(const std::vector<float>& original, const std::vector<float>& decoded) {
  return 10 * std::log10(energy(original) / squared_error(original, decoded));
}

TEST(HlwqCodec, ValidatesParams) {
  EXPECT_NO_THROW(validate(HlwqParams{}));
  auto with = [](auto change) {
    HlwqParams params;
    change(params);
    return error_message([&] { validate(params); });
  };
  EXPECT_EQ(with([](HlwqParams& p) { p.bits = 1; }), "HLWQ bits must be 2..8, got 1");
  EXPECT_EQ(with([](HlwqParams& p) { p.bits = 9; }), "HLWQ bits must be 2..8, got 9");
  for (int block : {0, 16, 48, 100, 2048}) {
    EXPECT_EQ(with([block](HlwqParams& p) { p.block = block; }),
              "HLWQ block size must be a power of two in 32..1024, got " + std::to_string(block));
  }
  EXPECT_EQ(with([](HlwqParams& p) { p.codebook = static_cast<CodebookKind>(7); }), "unknown HLWQ codebook kind 7");
  EXPECT_EQ(with([](HlwqParams& p) { p.gain = static_cast<BlockGain>(9); }), "unknown HLWQ block gain kind 9");
  EXPECT_EQ(with([](HlwqParams& p) { p.rotation = static_cast<Rotation>(5); }), "unknown HLWQ rotation kind 5");
  EXPECT_EQ(with([](HlwqParams& p) {
              p.rotation = Rotation::none;
              p.sign_seed = 3;
            }),
            "HLWQ random signs need the Hadamard rotation (a sign seed was given with rotation none)");
  EXPECT_EQ(with([](HlwqParams& p) {
              p.rotation = Rotation::none;
              p.codebook = CodebookKind::uniform;
              p.gain = BlockGain::least_squares;
            }),
            "(no error)");
  EXPECT_EQ(error_message([] { HlwqCodec(HlwqParams{}, 0); }), "HLWQ row length must be positive, got 0");
  EXPECT_THROW(HlwqCodec(make_params(12), 128), Error);
}

TEST(HlwqCodec, LayoutCountsBlocksAndBytes) {
  const HlwqRowLayout q5 = hlwq_row_layout(576, HlwqParams{});
  EXPECT_EQ(q5.columns, 576);
  EXPECT_EQ(q5.blocks, 5);
  EXPECT_EQ(q5.code_bytes, 5u * 80u);
  const HlwqRowLayout q3 = hlwq_row_layout(4096, make_params(3, 64));
  EXPECT_EQ(q3.blocks, 64);
  EXPECT_EQ(q3.code_bytes, 64u * 24u);
  EXPECT_EQ(hlwq_row_layout(1, make_params(8, 1024)).code_bytes, 1024u);
}

TEST(HlwqCodec, FittedBlockPadsNothing) {
  EXPECT_EQ(fitted_block(576, 128), 64);    // SmolLM2's hidden width: 9 blocks of 64, not 5 of 128
  EXPECT_EQ(fitted_block(1536, 128), 128);  // a multiple of the preferred block keeps it
  EXPECT_EQ(fitted_block(96, 128), 32);
  EXPECT_EQ(fitted_block(320, 256), 64);
  EXPECT_EQ(fitted_block(100, 128), 128);  // no power of two >= 32 divides 100: padded as before
  EXPECT_EQ(fitted_block(64, 32), 32);     // never above the preferred block
  for (int64_t columns : {64, 192, 576, 960, 1536, 2880}) {
    const int block = fitted_block(columns, 128);
    EXPECT_EQ(columns % block, 0) << columns;
    EXPECT_EQ(hlwq_row_layout(columns, make_params(5, block)).blocks * block, columns) << columns;
  }
  EXPECT_THROW(fitted_block(0, 128), Error);
}

// Codes must equal the plain reference's except where the reference's z lies within float
// rounding of a threshold (the two compute z in a different order); gains within one fp16 step.
void expect_matches_reference(const HlwqParams& params, int64_t columns, uint32_t seed) {
  const HlwqCodec codec(params, columns);
  const int rows = 6;
  std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), seed, 0.02f);
  // Some structure: a constant stretch and a few outliers, as real weights have.
  for (int64_t c = 0; c < std::min<int64_t>(columns, 40); ++c) weights[static_cast<size_t>(c)] = 0.03f;
  weights[static_cast<size_t>(columns + 3)] = 0.9f;
  const Quantized quantized = quantize(codec, weights);
  const std::vector<float> signs = params.sign_seed ? random_signs(*params.sign_seed, static_cast<size_t>(columns))
                                                    : std::vector<float>();
  const size_t block = static_cast<size_t>(params.block);
  const size_t blocks = static_cast<size_t>(codec.layout().blocks);
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  size_t near_threshold_mismatches = 0;
  for (int r = 0; r < rows; ++r) {
    const std::span<const float> row(weights.data() + r * columns, static_cast<size_t>(columns));
    std::vector<uint8_t> reference_codes(blocks * block);
    std::vector<float> reference_gains(blocks), reference_z(blocks * block);
    hlwq_quantize_row_reference(params, codec.codebook(), signs, row, reference_codes, reference_gains, reference_z);
    std::vector<uint8_t> codes(blocks * block);
    std::vector<float> gains(blocks);
    for (size_t b = 0; b < blocks; ++b) {
      unpack_block_codes(params.bits,
                         std::span(quantized.codes).subspan((r * blocks + b) * packed_bytes, packed_bytes),
                         std::span(codes).subspan(b * block, block));
      const uint16_t half = quantized.norms[r * blocks + b];
      const uint16_t reference_half = float_to_f16(reference_gains[b]);
      EXPECT_LE(std::abs(int{half} - int{reference_half}), 1) << "row " << r << " block " << b;
      gains[b] = f16_to_float(half);
    }
    for (size_t i = 0; i < codes.size(); ++i) {
      if (codes[i] == reference_codes[i]) continue;
      const int lower = std::min(codes[i], reference_codes[i]);
      ASSERT_EQ(std::abs(int{codes[i]} - int{reference_codes[i]}), 1) << "row " << r << " at " << i;
      const float threshold = codec.codebook().boundaries[static_cast<size_t>(lower)];
      ASSERT_NEAR(reference_z[i], threshold, 2e-5f * std::max(1.0f, std::abs(threshold))) << "row " << r << " at " << i;
      ++near_threshold_mismatches;
    }
    // Dequantization: fast path vs the plain reference on the codec's own codes and gains.
    std::vector<float> reference_row(static_cast<size_t>(columns));
    hlwq_dequantize_row_reference(params, codec.codebook(), signs, codes, gains, reference_row);
    std::vector<float> fast_row(static_cast<size_t>(columns));
    codec.dequantize_row(std::span(quantized.codes).subspan(r * codec.layout().code_bytes, codec.layout().code_bytes),
                         std::span(quantized.norms).subspan(r * blocks, blocks), fast_row);
    for (size_t b = 0; b < blocks; ++b) {
      const size_t begin = b * block, end = std::min<size_t>(begin + block, static_cast<size_t>(columns));
      // Float rounding of the butterflies: ~1e-6 of the block's gain per weight.
      for (size_t i = begin; i < end; ++i) ASSERT_NEAR(fast_row[i], reference_row[i], 2e-6 * gains[b] + 1e-30) << i;
    }
  }
  // Rounding-order mismatches are rare (about 1e-5 of the codes).
  EXPECT_LE(near_threshold_mismatches, static_cast<size_t>(rows) * blocks * block / 1000);
}

TEST(HlwqCodec, MatchesThePlainReference) {
  for (int bits = 2; bits <= 8; ++bits) {
    expect_matches_reference(make_params(bits), 1000, 100 + static_cast<uint32_t>(bits));
    // Every block size (the packing uses different vector widths for small planes).
    for (int block = 32; block <= 1024; block *= 2) {
      if (block == 128) continue;
      expect_matches_reference(make_params(bits, block), block * 2 + block / 2,
                               static_cast<uint32_t>(bits * block));
    }
  }
  expect_matches_reference(make_params(4, 32), 100, 1);
  expect_matches_reference(make_params(5, 1024, 9), 2500, 2);
  expect_matches_reference(make_params(3, 64, std::nullopt, BlockGain::least_squares), 576, 3);
  expect_matches_reference(make_params(5, 128, 1, BlockGain::least_squares, CodebookKind::polarquant_compat), 576, 4);
}

TEST(HlwqCodec, AblationVariantsMatchThePlainReference) {
  uint32_t seed = 500;
  for (char variant : {'a', 'b', 'c'}) {
    for (int bits : {2, 3, 4, 5, 8}) {
      expect_matches_reference(ablation_params(variant, bits), 1000, seed++);
      expect_matches_reference(ablation_params(variant, bits, 32), 100, seed++);
      expect_matches_reference(ablation_params(variant, bits, 1024), 2500, seed++);
      expect_matches_reference(ablation_params(variant, bits, 64, BlockGain::least_squares), 576, seed++);
    }
  }
  // The uniform codebook with random signs.
  expect_matches_reference(make_params(4, 128, 7, BlockGain::norm, CodebookKind::uniform), 576, seed++);
}

TEST(HlwqCodec, SqnrOnGaussianWeightsMatchesTheCodebook) {
  const int64_t rows = 64, columns = 4096;
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 2024, 0.02f);
  for (int bits = 2; bits <= 8; ++bits) {
    const HlwqCodec codec(make_params(bits), columns);
    const double theory = -10 * std::log10(codec.codebook().mse);
    const double measured = sqnr_db(weights, dequantize(codec, quantize(codec, weights)));
    EXPECT_NEAR(measured, theory, 0.3) << bits << " bits";
    if (bits == 5) {
      EXPECT_NEAR(measured, 26.0, 0.3);
    }
  }
  // The published codebook is 0.67 dB worse at Q5 (MSE 0.00292 vs 0.00250).
  const HlwqCodec compat(make_params(5, 128, std::nullopt, BlockGain::norm, CodebookKind::polarquant_compat), columns);
  EXPECT_NEAR(sqnr_db(weights, dequantize(compat, quantize(compat, weights))), -10 * std::log10(0.002923), 0.3);
}

// The paper's absmax (eq. 1) of one block in double: s * round(x / s * (2^(b-1) - 1)) / (2^(b-1) - 1)
// with s = max|x|. near_tie[i] is set where x / s * (2^(b-1) - 1) lies within 1e-3 of a rounding
// tie (where float rounding in the codec or the reference transform may pick the other neighbour).
std::vector<double> paper_absmax(std::span<const double> x, int bits, std::vector<bool>& near_tie) {
  const double top = (1 << (bits - 1)) - 1;
  double largest = 0;
  for (double value : x) largest = std::max(largest, std::abs(value));
  std::vector<double> decoded(x.size(), 0.0);
  near_tie.assign(x.size(), false);
  if (largest == 0) return decoded;
  for (size_t i = 0; i < x.size(); ++i) {
    const double scaled = x[i] / largest * top;
    near_tie[i] = std::abs(std::abs(scaled - std::floor(scaled)) - 0.5) < 1e-3;
    decoded[i] = largest * std::round(scaled) / top;
  }
  return decoded;
}

// (a) is exactly the paper's absmax per block and (b) is absmax of the Hadamard-rotated block,
// up to the fp16 rounding of the gain (2^-11 relative) and float rounding near ties. Checked in
// the coded basis: R(decoded block) against paper_absmax(R(block)), with the plain O(d^2)
// reference transform.
TEST(HlwqCodec, UniformCodebookIsThePapersAbsmax) {
  const int64_t rows = 8, columns = 700;  // 5.5 blocks of 128: a padded last block
  std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 41, 0.02f);
  std::mt19937 generator(42);
  std::uniform_int_distribution<size_t> position(0, weights.size() - 1);
  for (int i = 0; i < 60; ++i) weights[position(generator)] *= 12.0f;  // outliers
  for (Rotation rotation : {Rotation::none, Rotation::hadamard}) {
    for (int bits = 2; bits <= 8; ++bits) {
      const HlwqCodec codec(make_params(bits, 128, std::nullopt, BlockGain::norm, CodebookKind::uniform, rotation),
                            columns);
      const std::vector<float> decoded = dequantize(codec, quantize(codec, weights));
      const size_t block = 128;
      size_t ties = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (size_t first = 0; first < static_cast<size_t>(columns); first += block) {
          std::vector<float> original(block, 0.0f), decoded_block(block, 0.0f);
          for (size_t i = 0; i < block && first + i < static_cast<size_t>(columns); ++i) {
            original[i] = weights[r * columns + first + i];
            decoded_block[i] = decoded[r * columns + first + i];
          }
          std::vector<float> coded_original = original, coded_decoded = decoded_block;
          if (rotation == Rotation::hadamard) {
            walsh_hadamard_transform_reference(original, coded_original);
            walsh_hadamard_transform_reference(decoded_block, coded_decoded);
          }
          std::vector<bool> near_tie;
          const std::vector<double> expected =
              paper_absmax(std::vector<double>(coded_original.begin(), coded_original.end()), bits, near_tie);
          double largest = 0;
          for (float value : coded_original) largest = std::max(largest, std::abs(static_cast<double>(value)));
          const double step = largest / ((1 << (bits - 1)) - 1);
          // The decoded padding is dropped, so a padded block's rotated decode is not comparable.
          if (rotation == Rotation::hadamard && first + block > static_cast<size_t>(columns)) continue;
          for (size_t i = 0; i < block; ++i) {
            const double error = std::abs(coded_decoded[i] - expected[i]);
            // fp16 gain: 2^-11 of |value| <= largest; the reference transform: ~1e-6 of largest.
            if (error <= std::ldexp(largest, -11) + 2e-6 * largest) continue;
            ASSERT_TRUE(near_tie[i]) << "bits " << bits << " row " << r << " column " << first + i << ": "
                                     << coded_decoded[i] << " vs " << expected[i];
            ASSERT_NEAR(error, step, 1e-3 * step);
            ++ties;
          }
        }
      }
      EXPECT_LE(ties, 10u) << bits;  // of 5632 values
    }
  }
}

// Gaussian weights need no rotation to be Gaussian: then (c) reaches the codebook's theory.
TEST(HlwqCodec, LloydMaxWithoutRotationOnGaussianWeightsMatchesTheCodebook) {
  const int64_t rows = 64, columns = 2048;
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 2025, 0.02f);
  for (int bits = 2; bits <= 6; ++bits) {
    const HlwqCodec codec(ablation_params('c', bits), columns);
    const double theory = -10 * std::log10(codec.codebook().mse);
    EXPECT_NEAR(sqnr_db(weights, dequantize(codec, quantize(codec, weights))), theory, 0.3) << bits << " bits";
  }
}

TEST(HlwqCodec, UniformZeroBlocksDecodeToZero) {
  const int64_t rows = 3, columns = 320;  // 2.5 blocks of 128
  std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 17, 0.1f);
  for (int64_t c = 0; c < 128; ++c) weights[static_cast<size_t>(1 * columns + c)] = 0.0f;    // row 1, block 0
  for (int64_t c = 256; c < 320; ++c) weights[static_cast<size_t>(2 * columns + c)] = 0.0f;  // row 2, padded block
  for (char variant : {'a', 'b'}) {
    for (BlockGain gain : {BlockGain::norm, BlockGain::least_squares}) {
      const HlwqCodec codec(ablation_params(variant, 4, 128, gain), columns);
      const Quantized quantized = quantize(codec, weights);
      EXPECT_EQ(quantized.norms[1 * 3 + 0], 0) << variant;
      EXPECT_EQ(quantized.norms[2 * 3 + 2], 0) << variant;
      const std::vector<float> decoded = dequantize(codec, quantized);
      for (int64_t c = 0; c < 128; ++c) ASSERT_EQ(decoded[static_cast<size_t>(1 * columns + c)], 0.0f) << variant;
      for (int64_t c = 256; c < 320; ++c) ASSERT_EQ(decoded[static_cast<size_t>(2 * columns + c)], 0.0f) << variant;
      for (float value : decoded) ASSERT_TRUE(std::isfinite(value)) << variant;
      // A nonzero block is coded: Q4 absmax on Gaussian blocks is ~19 dB (step max/7).
      EXPECT_GT(sqnr_db(weights, decoded), 15.0) << variant;
    }
  }
}

// Gaussian-like weights with outliers, as trained layers have: the rotation must help the uniform
// code (b < a) and the Lloyd-Max code (d < c), as the paper's ablation says.
TEST(HlwqCodec, AblationErrorOrderingWithOutliers) {
  const int64_t rows = 64, columns = 2048;
  std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 77, 0.02f);
  std::mt19937 generator(78);
  std::uniform_int_distribution<size_t> position(0, weights.size() - 1);
  std::uniform_real_distribution<float> factor(5.0f, 15.0f);
  for (size_t i = 0; i < weights.size() / 200; ++i) weights[position(generator)] *= factor(generator);  // 0.5%
  for (int bits : {4, 5}) {
    double mse[4];
    for (char variant : {'a', 'b', 'c', 'd'}) {
      const HlwqCodec codec(ablation_params(variant, bits), columns);
      mse[variant - 'a'] = squared_error(weights, dequantize(codec, quantize(codec, weights))) / energy(weights);
    }
    std::printf("Q%d relative MSE: (a) absmax %.3g, (b) + Hadamard %.3g, (c) + Lloyd-Max only %.3g, (d) both %.3g\n",
                bits, mse[0], mse[1], mse[2], mse[3]);
    // Margins well inside the measured gaps (printed above).
    EXPECT_LT(mse[1], 0.8 * mse[0]) << bits << " bits: (b) < (a)";
    EXPECT_LT(mse[3], 0.8 * mse[2]) << bits << " bits: (d) < (c)";
  }
}

TEST(HlwqCodec, LeastSquaresGainNeverIncreasesBlockError) {
  std::mt19937 generator(8);
  std::student_t_distribution<float> heavy_tailed(3.0f);
  const int64_t columns = 128 * 64;
  std::vector<float> weights = random_normal(static_cast<size_t>(4 * columns), 31);
  for (size_t i = static_cast<size_t>(columns); i < 2 * static_cast<size_t>(columns); ++i) {
    weights[i] = heavy_tailed(generator);
  }
  for (size_t i = 2 * static_cast<size_t>(columns); i < 3 * static_cast<size_t>(columns); ++i) {
    weights[i] = 0.5f + 0.01f * weights[i];  // nearly constant blocks
  }
  for (int bits = 2; bits <= 8; ++bits) {
    for (std::optional<uint64_t> seed : {std::optional<uint64_t>(), std::optional<uint64_t>(5)}) {
      const HlwqCodec by_norm(make_params(bits, 128, seed), columns);
      const HlwqCodec by_least_squares(make_params(bits, 128, seed, BlockGain::least_squares),
                                       columns);
      const Quantized norm_quantized = quantize(by_norm, weights);
      const Quantized least_squares_quantized = quantize(by_least_squares, weights);
      EXPECT_EQ(norm_quantized.codes, least_squares_quantized.codes);  // only the gain differs
      const std::vector<float> norm_decoded = dequantize(by_norm, norm_quantized);
      const std::vector<float> least_squares_decoded = dequantize(by_least_squares, least_squares_quantized);
      double norm_total = 0, least_squares_total = 0;
      for (size_t start = 0; start < weights.size(); start += 128) {
        const std::span<const float> original(weights.data() + start, 128);
        const double norm_error = squared_error(original, std::span(norm_decoded).subspan(start, 128));
        const double least_squares_error =
            squared_error(original, std::span(least_squares_decoded).subspan(start, 128));
        // Both gains are rounded to fp16 and the LS optimum rounds to the nearest fp16, so only
        // float rounding (~1e-6 of the block energy) can put it above.
        ASSERT_LE(least_squares_error, norm_error + 1e-6 * energy(original)) << bits << " bits, block at " << start;
        norm_total += norm_error;
        least_squares_total += least_squares_error;
      }
      EXPECT_LT(least_squares_total, norm_total) << bits << " bits";
    }
  }
}

TEST(HlwqCodec, SignsChangeCodesButKeepErrorStatistics) {
  const int64_t rows = 32, columns = 4096;
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 77, 0.05f);
  const HlwqCodec plain(HlwqParams{}, columns);
  const HlwqCodec with_signs(make_params(5, 128, 1234), columns);
  const Quantized plain_quantized = quantize(plain, weights);
  const Quantized signed_quantized = quantize(with_signs, weights);
  size_t differing = 0;
  for (size_t i = 0; i < plain_quantized.codes.size(); ++i) {
    differing += plain_quantized.codes[i] != signed_quantized.codes[i];  // packed bytes
  }
  EXPECT_GT(differing, plain_quantized.codes.size() / 2);
  const double plain_sqnr = sqnr_db(weights, dequantize(plain, plain_quantized));
  const double signed_sqnr = sqnr_db(weights, dequantize(with_signs, signed_quantized));
  EXPECT_NEAR(plain_sqnr, signed_sqnr, 0.15);
  EXPECT_NEAR(signed_sqnr, -10 * std::log10(with_signs.codebook().mse), 0.3);
}

TEST(HlwqCodec, SignsRescueStructuredBlocks) {
  // A constant block rotates to a single coordinate sqrt(128) = 11.3, which the Q5 codebook clips
  // at 3.26: half the energy is lost. Random signs spread it over all coordinates.
  const int64_t columns = 1024;
  std::vector<float> weights(static_cast<size_t>(columns), 0.25f);
  const HlwqCodec plain(HlwqParams{}, columns);
  const HlwqCodec with_signs(make_params(5, 128, 42), columns);
  const double plain_relative = squared_error(weights, dequantize(plain, quantize(plain, weights))) / energy(weights);
  const double signed_relative =
      squared_error(weights, dequantize(with_signs, quantize(with_signs, weights))) / energy(weights);
  EXPECT_GT(plain_relative, 0.3);
  EXPECT_LT(signed_relative, 3 * with_signs.codebook().mse);
}

TEST(HlwqCodec, PaddedRowsRoundTripAndZeroBlocksDecodeToZero) {
  const int64_t rows = 16, columns = 576;  // 4.5 blocks of 128
  std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 12, 0.1f);
  for (int64_t c = 128; c < 256; ++c) weights[static_cast<size_t>(3 * columns + c)] = 0.0f;  // row 3, block 1
  for (int64_t c = 512; c < 576; ++c) weights[static_cast<size_t>(5 * columns + c)] = 0.0f;  // row 5, padded block
  for (std::optional<uint64_t> seed : {std::optional<uint64_t>(), std::optional<uint64_t>(3)}) {
    const HlwqCodec codec(make_params(5, 128, seed), columns);
    const Quantized quantized = quantize(codec, weights);
    EXPECT_EQ(quantized.norms[3 * 5 + 1], 0);  // fp16(1e-10) underflows to 0
    EXPECT_EQ(quantized.norms[5 * 5 + 4], 0);
    const std::vector<float> decoded = dequantize(codec, quantized);
    ASSERT_EQ(decoded.size(), weights.size());
    for (int64_t c = 128; c < 256; ++c) EXPECT_EQ(decoded[static_cast<size_t>(3 * columns + c)], 0.0f);
    for (int64_t c = 512; c < 576; ++c) EXPECT_EQ(decoded[static_cast<size_t>(5 * columns + c)], 0.0f);
    // The half-filled last blocks code 64 weights plus 64 zeros: the same relative error.
    std::vector<float> tail_original, tail_decoded;
    for (int64_t r = 0; r < rows; ++r) {
      if (r == 5) {
        continue;
      }
      for (int64_t c = 512; c < 576; ++c) {
        tail_original.push_back(weights[static_cast<size_t>(r * columns + c)]);
        tail_decoded.push_back(decoded[static_cast<size_t>(r * columns + c)]);
      }
    }
    EXPECT_NEAR(sqnr_db(tail_original, tail_decoded), -10 * std::log10(codec.codebook().mse), 1.5);
    EXPECT_NEAR(sqnr_db(weights, decoded), -10 * std::log10(codec.codebook().mse), 0.5);
  }
}

TEST(HlwqCodec, NonFiniteWeightsAreErrorsNamingRowAndColumn) {
  const int64_t rows = 4, columns = 576;
  const HlwqCodec codec(HlwqParams{}, columns);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (int64_t column : {int64_t{77}, int64_t{570}}) {
      std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 1);
      weights[static_cast<size_t>(2 * columns + column)] = bad;
      EXPECT_EQ(error_message([&] { quantize(codec, weights, 2); }),
                "non-finite weight at row 2, column " + std::to_string(column));
      std::vector<uint8_t> codes(codec.layout().code_bytes);
      std::vector<uint16_t> norms(static_cast<size_t>(codec.layout().blocks));
      EXPECT_EQ(error_message([&] {
                  codec.quantize_row(std::span(weights).subspan(static_cast<size_t>(2 * columns), columns), codes,
                                     norms);
                }),
                "non-finite weight at column " + std::to_string(column));
    }
  }
}

TEST(HlwqCodec, NonFiniteHalfPrecisionWeightsAreErrors) {
  // F16 infinities and NaN must survive the SIMD conversion (emulated f16 conversions on targets
  // without F16C turn them into finite numbers).
  const int64_t rows = 3, columns = 300;
  const HlwqCodec codec(HlwqParams{}, columns);
  ThreadPool pool(1);
  std::vector<uint8_t> codes(static_cast<size_t>(rows) * codec.layout().code_bytes);
  std::vector<uint16_t> norms(static_cast<size_t>(rows * codec.layout().blocks));
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (DType dtype : {DType::F16, DType::BF16}) {
      for (uint16_t bits : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e01}, uint16_t{0x7f80}, uint16_t{0xffc1}}) {
        const bool is_f16 = dtype == DType::F16;
        if (std::isfinite(is_f16 ? f16_to_float(bits) : bf16_to_float(bits))) continue;  // not special in this dtype
        std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 3);
        std::vector<std::byte> bytes(weights.size() * 2);
        convert_from_float(weights, dtype, bytes);
        std::memcpy(bytes.data() + 2 * (1 * columns + 17), &bits, 2);
        EXPECT_EQ(error_message([&] { codec.quantize_matrix(dtype, bytes, rows, codes, norms, pool); }),
                  "non-finite weight at row 1, column 17")
            << hwy::TargetName(target) << " " << dtype_name(dtype) << " " << bits;
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(HlwqCodec, GainsBeyondFp16AreErrors) {
  const int64_t columns = 256;
  const HlwqCodec codec(HlwqParams{}, columns);
  std::vector<float> weights = random_normal(static_cast<size_t>(columns), 2);
  for (int64_t c = 128; c < 256; ++c) weights[static_cast<size_t>(c)] = 6000.0f;  // norm 67882
  EXPECT_EQ(error_message([&] { quantize(codec, weights); }),
            "weight block at row 0, columns 128..255 has gain 67882.2, above the fp16 maximum 65504");
  weights[200] = 3e38f;  // its square overflows float, not the double sum
  EXPECT_NE(error_message([&] { quantize(codec, weights); }).find("above the fp16 maximum 65504"), std::string::npos);
  weights[201] = -3e38f;  // the rotation would overflow float: stopped before it
  EXPECT_EQ(error_message([&] { quantize(codec, weights); }),
            "weight block at row 0, columns 128..255 has gain inf, above the fp16 maximum 65504");
  // A large but representable norm with a least-squares gain that overflows fp16: a constant
  // block's gain is about 3.3 times its norm at Q5.
  const HlwqCodec least_squares(make_params(5, 128, std::nullopt, BlockGain::least_squares), columns);
  for (int64_t c = 128; c < 256; ++c) weights[static_cast<size_t>(c)] = 3000.0f;  // norm 33941
  EXPECT_NE(error_message([&] { quantize(least_squares, weights); }).find("above the fp16 maximum 65504"),
            std::string::npos);
  EXPECT_NO_THROW(quantize(codec, weights));
  // Just inside the range: 5780 * sqrt(128) = 65391.
  for (int64_t c = 128; c < 256; ++c) weights[static_cast<size_t>(c)] = 5780.0f;
  EXPECT_NO_THROW(quantize(codec, weights));
}

TEST(HlwqCodec, OutputDoesNotDependOnTheThreadCount) {
  const int64_t rows = 37, columns = 700;
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 5, 0.1f);
  const HlwqCodec codec(make_params(4, 128, 8, BlockGain::least_squares), columns);
  const Quantized one = quantize(codec, weights, 1);
  for (int threads : {2, 3}) {
    const Quantized many = quantize(codec, weights, threads);
    EXPECT_EQ(many.codes, one.codes) << threads;
    EXPECT_EQ(many.norms, one.norms) << threads;
    EXPECT_EQ(dequantize(codec, many, threads), dequantize(codec, one, 1)) << threads;
  }
}

TEST(HlwqCodec, EverySimdTargetGivesTheSameBytes) {
  const int64_t rows = 9, columns = 1000;
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 6, 0.1f);
  std::vector<HlwqParams> variants;
  for (BlockGain gain : {BlockGain::norm, BlockGain::least_squares}) {
    variants.push_back(make_params(6, 128, 2, gain));
    for (char variant : {'a', 'b', 'c'}) variants.push_back(ablation_params(variant, 5, 128, gain));
  }
  for (const HlwqParams& params : variants) {
    const HlwqCodec codec(params, columns);
    std::optional<Quantized> first;
    std::vector<float> first_decoded;
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      const Quantized quantized = quantize(codec, weights);
      const std::vector<float> decoded = dequantize(codec, quantized);
      if (!first) {
        first = quantized;
        first_decoded = decoded;
        continue;
      }
      EXPECT_EQ(quantized.codes, first->codes) << hwy::TargetName(target);
      EXPECT_EQ(quantized.norms, first->norms) << hwy::TargetName(target);
      EXPECT_EQ(decoded, first_decoded) << hwy::TargetName(target);
    }
    hwy::SetSupportedTargetsForTest(0);
  }
}

TEST(HlwqCodec, EveryFloatDtypeGivesTheSameCodes) {
  // Values m * 2^e with |m| < 256 and e >= -24 are exact in BF16, F16 (subnormal below 2^-14),
  // F32 and F64.
  const int64_t rows = 8, columns = 384;
  std::mt19937 generator(10);
  std::uniform_int_distribution<int> mantissa(-255, 255);
  std::uniform_int_distribution<int> exponent(-24, -8);
  std::vector<float> weights(static_cast<size_t>(rows * columns));
  for (float& weight : weights) weight = std::ldexp(static_cast<float>(mantissa(generator)), exponent(generator));
  const HlwqCodec codec(make_params(5, 128, 4), columns);
  const Quantized from_f32 = quantize(codec, weights);
  ThreadPool pool(2);
  for (DType dtype : {DType::F16, DType::BF16, DType::F64}) {
    std::vector<std::byte> bytes(weights.size() * dtype_size(dtype));
    convert_from_float(weights, dtype, bytes);
    std::vector<float> back(weights.size());
    convert_to_float(dtype, bytes, back);
    ASSERT_EQ(back, weights) << dtype_name(dtype) << " does not represent the test values";
    Quantized quantized{std::vector<uint8_t>(from_f32.codes.size()), std::vector<uint16_t>(from_f32.norms.size())};
    codec.quantize_matrix(dtype, bytes, rows, quantized.codes, quantized.norms, pool);
    EXPECT_EQ(quantized.codes, from_f32.codes) << dtype_name(dtype);
    EXPECT_EQ(quantized.norms, from_f32.norms) << dtype_name(dtype);
  }
  std::vector<std::byte> integers(weights.size() * 4);
  Quantized unused = from_f32;
  EXPECT_EQ(error_message([&] { codec.quantize_matrix(DType::I32, integers, rows, unused.codes, unused.norms, pool); }),
            "cannot quantize I32 weights with HLWQ (need F32, F16, BF16 or F64)");
}

TEST(HlwqCodec, RejectsMismatchedBuffers) {
  const HlwqCodec codec(HlwqParams{}, 256);
  std::vector<float> row(256, 1.0f), short_row(255);
  std::vector<uint8_t> codes(codec.layout().code_bytes), short_codes(codes.size() - 1);
  std::vector<uint16_t> norms(2), short_norms(1);
  EXPECT_THROW(codec.quantize_row(short_row, codes, norms), Error);
  EXPECT_THROW(codec.quantize_row(row, short_codes, norms), Error);
  EXPECT_THROW(codec.quantize_row(row, codes, short_norms), Error);
  EXPECT_THROW(codec.dequantize_row(codes, norms, short_row), Error);
  ThreadPool pool(1);
  EXPECT_THROW(codec.quantize_matrix(DType::F32, as_bytes_of(row), 2, codes, norms, pool), Error);
}

}  // namespace
}  // namespace hlwq
