#include "quant/int4_symmetric.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/float_rounding.h"
#include "quant/reference_data.h"
#include "test_util.h"

namespace hlwq {
namespace {

constexpr int kAllGroupSizes[] = {32, 64, 128};

struct Int4Result {
  std::vector<int32_t> packed;
  std::vector<float> scales;
};

Int4Result quantize(const Int4Params& params, DType dtype, std::span<const float> weights, int64_t rows,
                    int64_t columns) {
  Int4Result result;
  result.packed.resize(static_cast<size_t>(rows) * int4_packed_words_per_row(columns));
  result.scales.resize(static_cast<size_t>(rows * columns / params.group_size));
  int4_quantize_rows(params, dtype, weights, rows, columns, result.packed, result.scales);
  return result;
}

std::vector<float> dequantize(const Int4Params& params, const Int4Result& result, int64_t rows,
                              int64_t columns) {
  std::vector<float> weights(static_cast<size_t>(rows * columns));
  int4_dequantize_rows(params, result.packed, result.scales, rows, columns, weights);
  return weights;
}

std::string message_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

// Bit-exact comparison of ours (rounded to dtype) with a library's values; names the first difference.
void expect_same_floats(const std::string& what, std::span<const float> ours, std::span<const float> theirs,
                        DType dtype) {
  ASSERT_EQ(ours.size(), theirs.size()) << what;
  size_t differences = 0, first = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (std::bit_cast<uint32_t>(round_to_dtype(ours[i], dtype)) != std::bit_cast<uint32_t>(theirs[i])) {
      if (differences++ == 0) first = i;
    }
  }
  EXPECT_EQ(differences, 0u) << what << ": first at " << first << " ours " << ours[first] << " theirs "
                             << theirs[first];
}

void expect_same_words(const std::string& what, std::span<const int32_t> ours,
                       std::span<const int32_t> theirs) {
  ASSERT_EQ(ours.size(), theirs.size()) << what;
  size_t differences = 0, first = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] != theirs[i] && differences++ == 0) first = i;
  }
  EXPECT_EQ(differences, 0u) << what << ": first at word " << first << std::hex << " ours "
                             << static_cast<uint32_t>(ours[first]) << " theirs "
                             << static_cast<uint32_t>(theirs[first]);
}

TEST(Int4Symmetric, HandWorkedPacking) {
  // Largest magnitude 1.875 = 7.5 * 0.25, so compressed-tensors' rule gives scale 0.25 exactly;
  // -1.875 / 0.25 = -7.5 rounds (ties to even) to -8; -1.75 .. 1.75 are codes -7 .. 7; zeros are 0.
  std::vector<float> weights(32, 0.0f);
  weights[0] = -1.875f;
  for (int k = 1; k < 16; ++k) weights[static_cast<size_t>(k)] = static_cast<float>(k - 8) * 0.25f;
  const Int4Params params{32, Int4ScaleRule::kCompressedTensors};
  const Int4Result result = quantize(params, DType::F32, weights, 1, 32);
  ASSERT_EQ(result.scales.size(), 1u);
  EXPECT_EQ(result.scales[0], 0.25f);
  // Stored nibble = code + 8, column 8j + k in nibble k of word j.
  EXPECT_EQ(static_cast<uint32_t>(result.packed[0]), 0x76543210u);
  EXPECT_EQ(static_cast<uint32_t>(result.packed[1]), 0xFEDCBA98u);
  EXPECT_EQ(result.packed[1], -19088744);  // the same bits as a (negative) int32, as stored on disk
  EXPECT_EQ(static_cast<uint32_t>(result.packed[2]), 0x88888888u);
  EXPECT_EQ(static_cast<uint32_t>(result.packed[3]), 0x88888888u);
  std::vector<float> restored = dequantize(params, result, 1, 32);
  EXPECT_EQ(restored[0], -2.0f);  // the one code that moved: -1.875 -> -8 * 0.25
  for (size_t i = 1; i < 32; ++i) EXPECT_EQ(restored[i], weights[i]) << i;

  // The same weights under the HLWQ rule: scale = 1.875 / 7, every code in -7 .. 7, -8 unused.
  const Int4Params over7{32, Int4ScaleRule::kAbsmaxOver7};
  const Int4Result seven = quantize(over7, DType::F32, weights, 1, 32);
  EXPECT_EQ(seven.scales[0], 1.875f / 7.0f);
  EXPECT_EQ(static_cast<uint32_t>(seven.packed[0]) & 0xFu, 1u);  // -1.875 -> code -7 -> nibble 1
}

TEST(Int4Symmetric, ZeroGroupGetsTheDtypeEpsilonAsScale) {
  std::vector<float> weights(64, 0.0f);
  for (size_t i = 32; i < 64; ++i) weights[i] = 0.01f * static_cast<float>(i);
  for (DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    const Int4Result result = quantize(Int4Params{32}, dtype, weights, 1, 64);
    const float epsilon = dtype == DType::BF16 ? 0x1p-7f : (dtype == DType::F16 ? 0x1p-10f : 0x1p-23f);
    EXPECT_EQ(result.scales[0], epsilon) << dtype_name(dtype);
    for (size_t word = 0; word < 4; ++word) {
      EXPECT_EQ(static_cast<uint32_t>(result.packed[word]), 0x88888888u) << word;
    }
  }
}

TEST(Int4Symmetric, ParametersAndShapes) {
  for (int group_size : kAllGroupSizes) EXPECT_NO_THROW(validate(Int4Params{group_size}));
  EXPECT_EQ(message_of([] { validate(Int4Params{16}); }),
            "INT4 (compressed-tensors) quantization supports group sizes 32, 64 or 128, got 16");
  EXPECT_THROW(validate(Int4Params{0}), Error);
  EXPECT_THROW(validate(Int4Params{256}), Error);
  EXPECT_THROW(validate(Int4Params{128, static_cast<Int4ScaleRule>(9)}), Error);
  EXPECT_TRUE(int4_can_quantize(1536, Int4Params{128}));
  EXPECT_FALSE(int4_can_quantize(576, Int4Params{128}));  // SmolLM2's hidden size: needs group 64 or 32
  EXPECT_TRUE(int4_can_quantize(576, Int4Params{64}));
  EXPECT_FALSE(int4_can_quantize(0, Int4Params{}));
  EXPECT_TRUE(int4_marlin_shape_ok(192, 1536));
  EXPECT_FALSE(int4_marlin_shape_ok(192, 576));  // 576 % 128 != 0
  EXPECT_FALSE(int4_marlin_shape_ok(100, 1536));
  EXPECT_EQ(int4_packed_words_per_row(1536), 192u);
  EXPECT_THROW(int4_packed_words_per_row(12), Error);
}

TEST(Int4Symmetric, BadInputsThrowReadableErrors) {
  const Int4Params params{64};
  const std::vector<float> weights = random_normal(2 * 128, 3);
  std::vector<int32_t> packed(2 * 16);
  std::vector<float> scales(4);
  EXPECT_EQ(message_of([&] { int4_quantize_rows(params, DType::F64, weights, 2, 128, packed, scales); }),
            "INT4 quantization needs a BF16, F16 or F32 scale dtype, got F64");
  EXPECT_EQ(
      message_of([&] {
        int4_quantize_rows(params, DType::BF16, std::span(weights).first(192), 2, 96, packed, scales);
      }),
      "INT4 quantization needs the column count to be a positive multiple of the group size 64, got 96");
  EXPECT_NE(message_of([&] {
              int4_quantize_rows(params, DType::BF16, weights, 2, 128, packed, std::span(scales).first(3));
            }).find("INT4 buffers do not match a 2 x 128 matrix"),
            std::string::npos);
  std::vector<float> bad = weights;
  bad[130] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(message_of([&] { int4_quantize_rows(params, DType::BF16, bad, 2, 128, packed, scales); }),
            "INT4 quantization got a non-finite weight (-inf as BF16) at row 1, column 2");
  std::vector<float> restored(weights.size());
  EXPECT_THROW(int4_dequantize_rows(params, std::span(packed).first(30), scales, 2, 128, restored), Error);
}

// Every weight comes back within half a step, plus what the intermediate rounding to the weight
// dtype can add: the scale (relative 2^-9 BF16, 2^-12 F16) stretches the largest code 7.5 by that much,
// and the quotient w / scale is rounded to half an ulp at 4..8 (2^-6 BF16, 2^-9 F16) before rounding.
TEST(Int4Symmetric, RoundTripErrorWithinHalfAStep) {
  constexpr int64_t kRows = 32, kColumns = 512;
  struct Case {
    DType dtype;
    float extra_steps;
  };
  for (const Case& c : {Case{DType::F32, 1e-5f}, Case{DType::F16, 7.5f * 0x1p-12f + 0x1p-9f + 1e-5f},
                        Case{DType::BF16, 7.5f * 0x1p-9f + 0x1p-6f + 1e-5f}}) {
    for (Int4ScaleRule rule : {Int4ScaleRule::kCompressedTensors, Int4ScaleRule::kAbsmaxOver7}) {
      for (int group_size : kAllGroupSizes) {
        const Int4Params params{group_size, rule};
        std::vector<float> weights =
            random_normal(kRows * kColumns, 40 + static_cast<uint32_t>(group_size), 0.02f);
        for (size_t i = 0; i < weights.size(); i += 101) weights[i] *= -15.0f;  // outliers of both signs
        for (float& weight : weights) weight = round_to_dtype(weight, c.dtype);
        const Int4Result result = quantize(params, c.dtype, weights, kRows, kColumns);
        const std::vector<float> restored = dequantize(params, result, kRows, kColumns);
        float worst = 0.0f;
        for (size_t i = 0; i < weights.size(); ++i) {
          const float scale = result.scales[i / static_cast<size_t>(group_size)];
          worst = std::max(worst, std::abs(weights[i] - restored[i]) / scale);
        }
        EXPECT_LE(worst, 0.5f + c.extra_steps) << dtype_name(c.dtype) << " group " << group_size;
        EXPECT_GT(worst, 0.4f) << "suspiciously exact";
      }
    }
  }
}

// Measured, not assumed: compressed-tensors' m / 7.5 rule uses all 16 codes and beats the m / 7 rule.
TEST(Int4Symmetric, CompressedTensorsRuleHasLowerErrorThanAbsmaxOver7) {
  constexpr int64_t kRows = 64, kColumns = 1024;
  const std::vector<float> weights = random_normal(kRows * kColumns, 8);
  for (int group_size : kAllGroupSizes) {
    double squared_error[2] = {0, 0};
    for (int r = 0; r < 2; ++r) {
      const Int4Params params{group_size,
                              r == 0 ? Int4ScaleRule::kCompressedTensors : Int4ScaleRule::kAbsmaxOver7};
      const std::vector<float> restored =
          dequantize(params, quantize(params, DType::F32, weights, kRows, kColumns), kRows, kColumns);
      for (size_t i = 0; i < weights.size(); ++i) squared_error[r] += std::pow(weights[i] - restored[i], 2);
    }
    const double count = static_cast<double>(weights.size());
    std::printf("INT4 group %d, Gaussian weights: MSE m/7.5 %.6f, m/7 %.6f\n", group_size,
                squared_error[0] / count, squared_error[1] / count);
    EXPECT_LT(squared_error[0], squared_error[1] * 0.97) << group_size;
  }
}

// Golden files from the real compressed-tensors (scripts/make_affine_fixtures.py): calculate_qparams,
// PackedQuantizationCompressor.compress and .decompress on BF16 and F16 weights.
TEST(Int4Symmetric, MatchesCompressedTensorsFixturesBitExactly) {
  const std::filesystem::path folder = source_path("tests/fixtures/int4_symmetric");
  const nlohmann::json manifest = read_json(folder / "manifest.json");
  ASSERT_TRUE(manifest.is_object()) << "missing or broken " << folder / "manifest.json";
  const int64_t rows = manifest["rows"];
  const int64_t columns = manifest["columns"];
  int cases = 0;
  for (const nlohmann::json& fixture : manifest["cases"]) {
    const std::string dtype_text = fixture["dtype"];
    const DType dtype = *parse_dtype(dtype_text);
    const Int4Params params{fixture["group_size"].get<int>()};
    const std::string name = fixture["file"];
    const std::vector<float> weights =
        floats_of_bits(read_raw<uint16_t>(folder / manifest["inputs"][dtype_text].get<std::string>()), dtype);
    ASSERT_EQ(weights.size(), static_cast<size_t>(rows * columns)) << name;
    const std::vector<uint8_t> bytes = read_raw<uint8_t>(folder / name);
    const size_t words = static_cast<size_t>(rows) * int4_packed_words_per_row(columns);
    const size_t groups = static_cast<size_t>(rows * columns / params.group_size);
    const size_t values = static_cast<size_t>(rows * columns);
    ASSERT_EQ(bytes.size(), words * 4 + (groups + values) * 2) << name;
    Int4Result theirs;
    theirs.packed.resize(words);
    std::vector<uint16_t> halves(groups + values);
    std::memcpy(theirs.packed.data(), bytes.data(), words * 4);
    std::memcpy(halves.data(), bytes.data() + words * 4, halves.size() * 2);
    theirs.scales = floats_of_bits(std::span(halves).first(groups), dtype);
    const std::vector<float> decompressed = floats_of_bits(std::span(halves).subspan(groups), dtype);

    const Int4Result ours = quantize(params, dtype, weights, rows, columns);
    expect_same_words(name + " weight_packed", ours.packed, theirs.packed);
    expect_same_floats(name + " weight_scale", ours.scales, theirs.scales, dtype);
    expect_same_floats(name + " decompressed", dequantize(params, theirs, rows, columns), decompressed,
                       dtype);
    ++cases;
  }
  EXPECT_EQ(cases, 2 * 3);
}

// Fresh seeded data through the installed compressed-tensors: its compressor must produce our words and
// scales, and its decompressor must read our tensors back to our dequantization (rounded to the dtype).
TEST(Int4Symmetric, MatchesLiveCompressedTensors) {
  if (!python_has_modules("torch compressed_tensors")) {
    GTEST_SKIP()
        << "python3 has no torch and compressed_tensors (pip install compressed-tensors) to cross-check with";
  }
  constexpr int64_t kRows = 16, kColumns = 384;
  TemporaryFolder folder;
  nlohmann::json job = {{"kind", "ct-int4"}, {"cases", nlohmann::json::array()}};
  struct Ours {
    DType dtype;
    Int4Params params;
    std::vector<float> weights;
    Int4Result result;
  };
  std::vector<Ours> ours;
  for (DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    for (int group_size : kAllGroupSizes) {
      const std::string stem =
          (folder.path() / (std::string(dtype_name(dtype)) + std::to_string(group_size))).string();
      std::vector<float> weights =
          random_normal(kRows * kColumns, 500 + static_cast<uint32_t>(ours.size()), 0.03f);
      for (int64_t column = 0; column < kColumns; ++column) {
        weights[static_cast<size_t>(column)] =
            column < 128 ? 0.0f : std::abs(weights[static_cast<size_t>(column)]);
        if (column % 7 == 0) weights[static_cast<size_t>(kColumns + column)] *= 30.0f;
      }
      for (float& weight : weights) weight = round_to_dtype(weight, dtype);
      const Int4Params params{group_size};
      Int4Result result = quantize(params, dtype, weights, kRows, kColumns);
      write_raw<float>(stem + ".input", weights);
      write_raw<int32_t>(stem + ".ours_packed", result.packed);
      write_raw<float>(stem + ".ours_scales", result.scales);
      job["cases"].push_back({{"input", stem + ".input"},
                              {"rows", kRows},
                              {"columns", kColumns},
                              {"dtype", std::string(dtype_name(dtype))},
                              {"group_size", group_size},
                              {"output", stem},
                              {"ours_packed", stem + ".ours_packed"},
                              {"ours_scales", stem + ".ours_scales"}});
      ours.push_back({dtype, params, std::move(weights), std::move(result)});
    }
  }
  std::ofstream(folder.path() / "job.json") << job.dump();
  ASSERT_EQ(run_reference_quantizers(folder.path() / "job.json", folder.path() / "log.txt"), 0)
      << read_text(folder.path() / "log.txt");
  for (size_t i = 0; i < ours.size(); ++i) {
    const std::string stem = job["cases"][i]["output"];
    const std::string name =
        std::string(dtype_name(ours[i].dtype)) + " group " + std::to_string(ours[i].params.group_size);
    expect_same_words(name + " weight_packed", ours[i].result.packed, read_raw<int32_t>(stem + ".packed"));
    expect_same_floats(name + " weight_scale", ours[i].result.scales, read_raw<float>(stem + ".scales"),
                       ours[i].dtype);
    expect_same_floats(name + " their decompress of ours",
                       dequantize(ours[i].params, ours[i].result, kRows, kColumns),
                       read_raw<float>(stem + ".ours_dequantized"), ours[i].dtype);
  }
}

}  // namespace
}  // namespace hlwq
