// Trellis-coded matrices (quant/trellis_codec.h): the bit layout of docs/FORMAT.md byte by byte,
// pack/unpack round trips, random-access states equal to the walk's, the fast decoder equal to the
// plain reference, the error of coded Gaussian rows, and bad parameters and weights refused.
#include "quant/trellis_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/random_signs.h"
#include "test_util.h"

namespace hlwq {
namespace {

TrellisWalk random_walk(const TrellisParams& params, size_t values, uint32_t seed) {
  std::mt19937 generator(seed);
  TrellisWalk walk;
  walk.first_state = generator() & ((1u << params.state_bits) - 1);
  for (size_t t = 1; t < values; ++t) walk.steps.push_back(static_cast<uint8_t>(generator() & ((1u << params.bits_per_value) - 1)));
  return walk;
}

double sqnr_db(std::span<const float> reference, std::span<const float> coded) {
  double signal = 0, noise = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    signal += static_cast<double>(reference[i]) * reference[i];
    noise += (static_cast<double>(reference[i]) - coded[i]) * (static_cast<double>(reference[i]) - coded[i]);
  }
  return 10 * std::log10(signal / noise);
}

TEST(TrellisCodec, LayoutOfARow) {
  TrellisFormat format;
  format.bits = 4;
  format.state_bits = 12;
  format.block = 64;
  const TrellisRowLayout layout = trellis_row_layout(576, format);
  EXPECT_EQ(layout.blocks, 9);
  EXPECT_EQ(layout.head_bytes, 1u);   // L - k = 8 bits
  EXPECT_EQ(layout.block_bytes, 32u);  // 64 values of 4 bits
  EXPECT_EQ(layout.code_bytes, 1u + 9 * 32);
  format.state_bits = 14;  // 10 bits of head: 2 bytes
  EXPECT_EQ(trellis_row_layout(576, format).head_bytes, 2u);
  format.bits = 3;
  format.state_bits = 12;
  format.block = 128;  // padded: 300 columns take 3 blocks of 48 bytes
  const TrellisRowLayout padded = trellis_row_layout(300, format);
  EXPECT_EQ(padded.blocks, 3);
  EXPECT_EQ(padded.head_bytes, 2u);
  EXPECT_EQ(padded.code_bytes, 2u + 3 * 48);
}

// The examples of docs/FORMAT.md.
TEST(TrellisCodec, PackedBytesFollowTheDocumentedLayout) {
  {  // L = 12, k = 4: the stream starts at bit 0; first state 0xABC, then steps 5 and 0xE.
    const TrellisParams params{12, 4};
    TrellisWalk walk;
    walk.first_state = 0xABC;
    walk.steps = {0x5, 0xE};
    std::vector<uint8_t> row(1 + 2, 0xFF);
    pack_trellis_walk(params, walk, 1, row);
    EXPECT_EQ(row, (std::vector<uint8_t>{0xAB, 0xC5, 0xE0}));
    EXPECT_EQ(trellis_state_at(params, row, 1, 0), 0xABCu);
    EXPECT_EQ(trellis_state_at(params, row, 1, 1), 0xBC5u);
    EXPECT_EQ(trellis_state_at(params, row, 1, 2), 0xC5Eu);
  }
  {  // L = 14, k = 4: 10 head bits, so the stream starts at bit 6 of the 2 head bytes.
    const TrellisParams params{14, 4};
    TrellisWalk walk;
    walk.first_state = 0x3FFF;  // 14 ones
    walk.steps = {0x0};
    std::vector<uint8_t> row(2 + 1, 0);
    pack_trellis_walk(params, walk, 2, row);
    EXPECT_EQ(row, (std::vector<uint8_t>{0x03, 0xFF, 0xF0}));
    EXPECT_EQ(trellis_state_at(params, row, 2, 1), 0x3FF0u);
  }
}

TEST(TrellisCodec, PackUnpackRoundTripsAndStatesMatchTheWalk) {
  for (const auto& [state_bits, bits] : {std::pair{12, 4}, std::pair{14, 4}, std::pair{12, 3}, std::pair{10, 2},
                                         std::pair{16, 5}, std::pair{20, 8}}) {
    const TrellisParams params{state_bits, bits};
    const size_t values = 256;
    const size_t head = static_cast<size_t>(state_bits - bits + 7) / 8;
    const TrellisWalk walk = random_walk(params, values, static_cast<uint32_t>(state_bits * 10 + bits));
    std::vector<uint8_t> row(head + values * static_cast<size_t>(bits) / 8);
    pack_trellis_walk(params, walk, head, row);
    const TrellisWalk back = unpack_trellis_walk(params, row, head, values);
    EXPECT_EQ(back.first_state, walk.first_state) << state_bits << " " << bits;
    EXPECT_EQ(back.steps, walk.steps) << state_bits << " " << bits;
    uint32_t state = walk.first_state;
    for (size_t t = 0; t < values; ++t) {
      if (t > 0) state = ((state << bits) | walk.steps[t - 1]) & ((1u << state_bits) - 1);
      ASSERT_EQ(trellis_state_at(params, row, head, t), state) << state_bits << " " << bits << " value " << t;
    }
  }
}

TEST(TrellisCodec, FastDecoderEqualsTheReference) {
  for (const auto& [bits, state_bits, block, columns, seed] :
       {std::tuple{4, 12, 64, 576, 1}, std::tuple{3, 12, 128, 300, 2}, std::tuple{2, 10, 32, 96, 3},
        std::tuple{4, 14, 64, 192, 4}}) {
    TrellisFormat format;
    format.bits = bits;
    format.state_bits = state_bits;
    format.block = block;
    format.sign_seed = seed % 2 == 1 ? std::optional<uint64_t>(42) : std::nullopt;
    const TrellisCodec codec(format, columns);
    const int64_t rows = 3;
    const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 100 + seed, 0.02f);
    std::vector<uint8_t> codes(codec.layout().code_bytes * rows);
    std::vector<uint16_t> gains(codec.layout().blocks * rows);
    ThreadPool pool(2);
    codec.quantize_matrix(DType::F32, std::as_bytes(std::span<const float>(weights)), rows, codes, gains, pool);
    std::vector<float> fast(weights.size()), reference(static_cast<size_t>(columns));
    codec.dequantize_matrix(codes, gains, rows, fast, pool);
    const std::span<const float> signs = codec.padded_signs().first(codec.padded_signs().empty() ? 0 : columns);
    for (int64_t r = 0; r < rows; ++r) {
      trellis_dequantize_row_reference(
          format, codec.codebook(), signs, std::span<const uint8_t>(codes).subspan(r * codec.layout().code_bytes, codec.layout().code_bytes),
          std::span<const uint16_t>(gains).subspan(r * codec.layout().blocks, codec.layout().blocks), reference);
      for (int64_t c = 0; c < columns; ++c) {
        // Float against double transforms of the same values: a few ulps of the row's scale.
        ASSERT_NEAR(fast[r * columns + c], reference[c], 2e-6f) << bits << " " << state_bits << " row " << r << " column " << c;
      }
    }
    const double expected_db = 5.0 * bits;  // about 6 dB a bit, minus what short rows and padding cost
    EXPECT_GT(sqnr_db(weights, fast), expected_db) << bits << " " << state_bits;
  }
}

TEST(TrellisCodec, GaussianRowsReachTheTrellisError) {
  TrellisFormat format;  // k = 4, L = 12, block 64, least-squares gains
  const int64_t columns = 1024, rows = 4;
  const TrellisCodec codec(format, columns);
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 7, 0.03f);
  std::vector<uint8_t> codes(codec.layout().code_bytes * rows);
  std::vector<uint16_t> gains(codec.layout().blocks * rows);
  ThreadPool pool(1);
  codec.quantize_matrix(DType::F32, std::as_bytes(std::span<const float>(weights)), rows, codes, gains, pool);
  std::vector<float> decoded(weights.size());
  codec.dequantize_matrix(codes, gains, rows, decoded, pool);
  // On N(0, 1) values k = 4 trellis codes reach about 23 dB at L = 12 (HLWQ's Lloyd-Max Q4: 20.2 dB).
  EXPECT_GT(sqnr_db(weights, decoded), 22.0);
  EXPECT_LT(sqnr_db(weights, decoded), 24.1);  // the rate-distortion bound at 4 bits
}

TEST(TrellisCodec, ResultDoesNotDependOnThreads) {
  TrellisFormat format;
  format.bits = 3;
  const int64_t columns = 192, rows = 9;
  const TrellisCodec codec(format, columns);
  const std::vector<float> weights = random_normal(static_cast<size_t>(rows * columns), 9, 0.02f);
  std::vector<uint8_t> one(codec.layout().code_bytes * rows), two(one.size());
  std::vector<uint16_t> gains_one(codec.layout().blocks * rows), gains_two(gains_one.size());
  ThreadPool single(1), pair(2);
  const auto bytes = std::as_bytes(std::span<const float>(weights));
  codec.quantize_matrix(DType::F32, bytes, rows, one, gains_one, single);
  codec.quantize_matrix(DType::F32, bytes, rows, two, gains_two, pair);
  EXPECT_EQ(one, two);
  EXPECT_EQ(gains_one, gains_two);
}

TEST(TrellisCodec, BadFormatsAndWeightsAreRefused) {
  TrellisFormat format;
  format.bits = 1;
  EXPECT_NE(error_message([&] { validate(format); }).find("bits per value must be 2..8"), std::string::npos);
  format.bits = 4;
  format.state_bits = 4;
  EXPECT_NE(error_message([&] { validate(format); }).find("state bits"), std::string::npos);
  format.state_bits = 21;
  EXPECT_NE(error_message([&] { validate(format); }).find("state bits"), std::string::npos);
  format.state_bits = 12;
  format.block = 48;
  EXPECT_NE(error_message([&] { validate(format); }).find("block size"), std::string::npos);
  format.block = 64;
  EXPECT_NE(error_message([&] { (void)trellis_row_layout(0, format); }).find("row length"), std::string::npos);

  const TrellisCodec codec(format, 128);
  std::vector<float> row = random_normal(128, 3, 0.02f);
  row[77] = NAN;
  std::vector<uint8_t> codes(codec.layout().code_bytes);
  std::vector<uint16_t> gains(codec.layout().blocks);
  EXPECT_EQ(error_message([&] { codec.quantize_row(row, codes, gains); }), "non-finite weight at column 77");
  row[77] = 1e6f;  // a block of norm 1e6 has a gain far above fp16's 65504
  EXPECT_NE(error_message([&] { codec.quantize_row(row, codes, gains); }).find("above the fp16 maximum"),
            std::string::npos);
}

}  // namespace
}  // namespace hlwq
