#include "quant/affine_quant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/float_rounding.h"
#include "quant/reference_data.h"
#include "test_util.h"

namespace hlwq {
namespace {

constexpr int kAllBits[] = {2, 3, 4, 5, 6, 8};
constexpr int kAllGroupSizes[] = {32, 64, 128};

struct AffineResult {
  std::vector<uint32_t> packed;
  std::vector<float> scales;
  std::vector<float> biases;
};

AffineResult quantize(const AffineParams& params, DType dtype, std::span<const float> weights, int64_t rows,
                      int64_t columns) {
  AffineResult result;
  result.packed.resize(static_cast<size_t>(rows) * affine_packed_words_per_row(columns, params.bits));
  result.scales.resize(static_cast<size_t>(rows * columns / params.group_size));
  result.biases.resize(result.scales.size());
  affine_quantize_rows(params, dtype, weights, rows, columns, result.packed, result.scales, result.biases);
  return result;
}

template <class T>
size_t count_differences(std::span<const T> ours, std::span<const T> theirs, size_t* first) {
  size_t differences = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] != theirs[i]) {
      if (differences++ == 0) *first = i;
    }
  }
  return differences;
}

// Compares float results bit for bit (so +0 and -0 differ) after rounding to dtype.
size_t count_float_differences(std::span<const float> ours, std::span<const float> theirs, DType dtype,
                               size_t* first) {
  size_t differences = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const float mine = round_to_dtype(ours[i], dtype);
    if (std::bit_cast<uint32_t>(mine) != std::bit_cast<uint32_t>(theirs[i])) {
      if (differences++ == 0) *first = i;
    }
  }
  return differences;
}

// Expects ours == theirs exactly and names the case and the first difference otherwise.
void expect_same_quantization(const std::string& name, const AffineResult& ours,
                              std::span<const uint32_t> packed, std::span<const float> scales,
                              std::span<const float> biases, DType dtype) {
  ASSERT_EQ(ours.packed.size(), packed.size()) << name;
  ASSERT_EQ(ours.scales.size(), scales.size()) << name;
  ASSERT_EQ(ours.biases.size(), biases.size()) << name;
  size_t first = 0;
  size_t differences = count_differences<uint32_t>(ours.packed, packed, &first);
  EXPECT_EQ(differences, 0u) << name << ": packed word " << first << " ours " << std::hex
                             << ours.packed[first] << " mlx " << packed[first];
  differences = count_float_differences(ours.scales, scales, dtype, &first);
  EXPECT_EQ(differences, 0u) << name << ": scale " << first << " ours " << ours.scales[first] << " mlx "
                             << scales[first];
  differences = count_float_differences(ours.biases, biases, dtype, &first);
  EXPECT_EQ(differences, 0u) << name << ": bias " << first << " ours " << ours.biases[first] << " mlx "
                             << biases[first];
}

TEST(AffineQuant, ValidateAcceptsMlxParametersOnly) {
  for (int bits : kAllBits) {
    for (int group_size : kAllGroupSizes) EXPECT_NO_THROW(validate(AffineParams{bits, group_size}));
  }
  for (int bits : {0, 1, 7, 9, 16, -4}) {
    try {
      validate(AffineParams{bits, 64});
      ADD_FAILURE() << "bits " << bits << " accepted";
    } catch (const Error& error) {
      EXPECT_EQ(std::string(error.what()),
                "MLX affine quantization supports 2, 3, 4, 5, 6 or 8 bits, got " + std::to_string(bits));
    }
  }
  for (int group_size : {0, 16, 48, 96, 256, -64}) {
    EXPECT_THROW(validate(AffineParams{4, group_size}), Error) << group_size;
  }
}

TEST(AffineQuant, ShapeRulesFollowMlxLm) {
  EXPECT_TRUE(affine_can_quantize(576, AffineParams{4, 64}));    // SmolLM2 hidden size
  EXPECT_FALSE(affine_can_quantize(576, AffineParams{4, 128}));  // 576 = 4.5 * 128: left unquantized
  EXPECT_TRUE(affine_can_quantize(1536, AffineParams{4, 128}));
  EXPECT_FALSE(affine_can_quantize(0, AffineParams{}));
  EXPECT_FALSE(affine_can_quantize(-64, AffineParams{}));
  EXPECT_EQ(affine_packed_words_per_row(256, 2), 16u);
  EXPECT_EQ(affine_packed_words_per_row(256, 3), 24u);
  EXPECT_EQ(affine_packed_words_per_row(256, 4), 32u);
  EXPECT_EQ(affine_packed_words_per_row(256, 5), 40u);
  EXPECT_EQ(affine_packed_words_per_row(256, 6), 48u);
  EXPECT_EQ(affine_packed_words_per_row(256, 8), 64u);
  EXPECT_THROW(affine_packed_words_per_row(48, 4), Error);
  EXPECT_THROW(affine_packed_words_per_row(256, 7), Error);
}

TEST(AffineQuant, BadInputsThrowReadableErrors) {
  const AffineParams params{4, 64};
  const std::vector<float> weights = random_normal(2 * 128, 11);
  std::vector<uint32_t> packed(2 * 16);
  std::vector<float> scales(4), biases(4);
  auto message_of = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const Error& error) {
      return error.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(
      message_of([&] { affine_quantize_rows(params, DType::I32, weights, 2, 128, packed, scales, biases); }),
      "MLX affine quantization needs a BF16, F16 or F32 scale dtype, got I32");
  EXPECT_EQ(message_of([&] {
              affine_quantize_rows(params, DType::BF16, std::span(weights).first(200), 2, 100, packed, scales,
                                   biases);
            }),
            "MLX affine quantization needs the column count to be a positive multiple of the group size 64, "
            "got 100");
  EXPECT_NE(message_of([&] {
              affine_quantize_rows(params, DType::BF16, weights, 2, 128, std::span(packed).first(31), scales,
                                   biases);
            }).find("MLX affine buffers do not match a 2 x 128 matrix"),
            std::string::npos);
  EXPECT_THROW(affine_quantize_rows(params, DType::BF16, weights, -2, 128, packed, scales, biases), Error);

  std::vector<float> bad = weights;
  bad[128 + 3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(
      message_of([&] { affine_quantize_rows(params, DType::BF16, bad, 2, 128, packed, scales, biases); }),
      "MLX affine quantization got a non-finite weight (nan as BF16) at row 1, column 3");
  bad = weights;
  bad[70] = 70000.0f;  // finite in float, infinite once held in F16
  EXPECT_EQ(
      message_of([&] { affine_quantize_rows(params, DType::F16, bad, 2, 128, packed, scales, biases); }),
      "MLX affine quantization got a non-finite weight (70000 as F16) at row 0, column 70");

  std::vector<float> restored(weights.size());
  EXPECT_THROW(affine_dequantize_rows(params, packed, std::span(scales).first(3), biases, 2, 128, restored),
               Error);
  EXPECT_THROW(affine_dequantize_rows(AffineParams{7, 64}, packed, scales, biases, 2, 128, restored), Error);
}

// The golden files come from the real mlx.core.quantize / mx.dequantize (scripts/make_affine_fixtures.py):
// BF16 and F16 inputs whose rows reach every branch (all-positive, all-negative, constant, zero,
// zero-containing, tiny, tie-prone, outlier, heavy-tailed, large), for all bits and group sizes.
TEST(AffineQuant, MatchesMlxFixturesBitExactly) {
  const std::filesystem::path folder = source_path("tests/fixtures/affine");
  const nlohmann::json manifest = read_json(folder / "manifest.json");
  ASSERT_TRUE(manifest.is_object()) << "missing or broken " << folder / "manifest.json";
  const int64_t rows = manifest["rows"];
  const int64_t columns = manifest["columns"];
  int cases = 0;
  for (const nlohmann::json& fixture : manifest["cases"]) {
    const DType dtype = *parse_dtype(fixture["dtype"].get<std::string>());
    const AffineParams params{fixture["bits"].get<int>(), fixture["group_size"].get<int>()};
    const std::string name = fixture["file"];
    const std::vector<float> weights = floats_of_bits(
        read_raw<uint16_t>(folder /
                           manifest["inputs"][fixture["dtype"].get<std::string>()].get<std::string>()),
        dtype);
    ASSERT_EQ(weights.size(), static_cast<size_t>(rows * columns)) << name;

    const std::vector<uint8_t> bytes = read_raw<uint8_t>(folder / name);
    const size_t words = static_cast<size_t>(rows) * affine_packed_words_per_row(columns, params.bits);
    const size_t groups = static_cast<size_t>(rows * columns / params.group_size);
    const size_t values = static_cast<size_t>(rows * columns);
    ASSERT_EQ(bytes.size(), words * 4 + (2 * groups + values) * 2) << name;
    std::vector<uint32_t> packed(words);
    std::vector<uint16_t> halves(2 * groups + values);
    std::memcpy(packed.data(), bytes.data(), words * 4);
    std::memcpy(halves.data(), bytes.data() + words * 4, halves.size() * 2);
    const std::vector<float> scales = floats_of_bits(std::span(halves).subspan(0, groups), dtype);
    const std::vector<float> biases = floats_of_bits(std::span(halves).subspan(groups, groups), dtype);
    const std::vector<float> dequantized = floats_of_bits(std::span(halves).subspan(2 * groups), dtype);

    expect_same_quantization(name, quantize(params, dtype, weights, rows, columns), packed, scales, biases,
                             dtype);
    std::vector<float> restored(values);
    affine_dequantize_rows(params, dtype, packed, scales, biases, rows, columns, restored);
    size_t first = 0;
    EXPECT_EQ(count_float_differences(restored, dequantized, dtype, &first), 0u)
        << name << ": dequantized " << first << " ours " << restored[first] << " mlx " << dequantized[first];
    ++cases;
  }
  EXPECT_EQ(cases, 2 * 6 * 3);  // BF16, F16 x bits 2,3,4,5,6,8 x groups 32,64,128
}

// Fresh seeded data through the installed mlx: every dtype, width and group size, with groups that are
// constant, zero, all-positive and all-negative mixed into Gaussian rows.
TEST(AffineQuant, MatchesLiveMlxOnFreshRandomData) {
  if (!python_has_modules("mlx.core"))
    GTEST_SKIP() << "python3 has no mlx.core (pip install mlx) to cross-check with";
  constexpr int64_t kRows = 16, kColumns = 384;
  TemporaryFolder folder;
  nlohmann::json job = {{"kind", "mlx-affine"}, {"cases", nlohmann::json::array()}};
  std::vector<std::vector<float>> inputs;
  const DType dtypes[] = {DType::BF16, DType::F16, DType::F32};
  for (size_t d = 0; d < 3; ++d) {
    std::vector<float> weights = random_normal(kRows * kColumns, 9000 + static_cast<uint32_t>(d), 0.03f);
    for (int64_t column = 0; column < kColumns; ++column) {
      weights[1 * kColumns + column] = std::abs(weights[1 * kColumns + column]);   // all positive
      weights[2 * kColumns + column] = -std::abs(weights[2 * kColumns + column]);  // all negative
      weights[3 * kColumns + column] = column < 128 ? 0.0f : (column < 256 ? 0.8125f : -3e-8f);  // constant
      if (column % 5 == 0) weights[4 * kColumns + column] = 0.0f;  // zero-containing
    }
    for (float& weight : weights) weight = round_to_dtype(weight, dtypes[d]);
    const std::filesystem::path input = folder.path() / ("input" + std::to_string(d) + ".f32");
    write_raw<float>(input, weights);
    inputs.push_back(std::move(weights));
    for (int bits : kAllBits) {
      for (int group_size : kAllGroupSizes) {
        job["cases"].push_back({{"input", input.string()},
                                {"rows", kRows},
                                {"columns", kColumns},
                                {"dtype", std::string(dtype_name(dtypes[d]))},
                                {"bits", bits},
                                {"group_size", group_size},
                                {"output", (folder.path() / (std::to_string(d) + "_" + std::to_string(bits) +
                                                             "_" + std::to_string(group_size)))
                                               .string()}});
      }
    }
  }
  std::ofstream(folder.path() / "job.json") << job.dump();
  ASSERT_EQ(run_reference_quantizers(folder.path() / "job.json", folder.path() / "log.txt"), 0)
      << read_text(folder.path() / "log.txt");

  int compared = 0;
  for (const nlohmann::json& reference : job["cases"]) {
    const DType dtype = *parse_dtype(reference["dtype"].get<std::string>());
    const size_t d = dtype == DType::BF16 ? 0 : (dtype == DType::F16 ? 1 : 2);
    const AffineParams params{reference["bits"].get<int>(), reference["group_size"].get<int>()};
    const std::string prefix = reference["output"];
    const std::string name = std::string(dtype_name(dtype)) + " bits " + std::to_string(params.bits) +
                             " group " + std::to_string(params.group_size);
    const std::vector<uint32_t> packed = read_raw<uint32_t>(prefix + ".packed");
    const std::vector<float> scales = read_raw<float>(prefix + ".scales");
    const std::vector<float> biases = read_raw<float>(prefix + ".biases");
    const std::vector<float> dequantized = read_raw<float>(prefix + ".dequantized");
    expect_same_quantization(name, quantize(params, dtype, inputs[d], kRows, kColumns), packed, scales,
                             biases, dtype);
    std::vector<float> restored(inputs[d].size());
    affine_dequantize_rows(params, dtype, packed, scales, biases, kRows, kColumns, restored);
    size_t first = 0;
    ASSERT_EQ(dequantized.size(), restored.size()) << name;
    EXPECT_EQ(count_float_differences(restored, dequantized, dtype, &first), 0u)
        << name << ": dequantized " << first << " ours " << restored[first] << " mlx " << dequantized[first];
    ++compared;
  }
  EXPECT_EQ(compared, 3 * 6 * 3);
}

// MLX's grid starts exactly at the group's largest-magnitude weight and steps |scale| towards the other
// end; weights inside the grid are at most half a step off, and the far end, which the zero-aligned
// grid may fall short of, at most one step.
TEST(AffineQuant, RoundTripErrorWithinHalfStepInsideTheGrid) {
  constexpr int64_t kRows = 24, kColumns = 512;
  for (int bits : kAllBits) {
    for (int group_size : kAllGroupSizes) {
      const AffineParams params{bits, group_size};
      std::vector<float> weights = random_normal(kRows * kColumns, 100 + bits * 7 + group_size, 0.02f);
      for (size_t i = 0; i < weights.size(); i += 97) weights[i] *= 20.0f;  // outliers
      const AffineResult result = quantize(params, DType::F32, weights, kRows, kColumns);
      std::vector<float> restored(weights.size());
      affine_dequantize_rows(params, result.packed, result.scales, result.biases, kRows, kColumns, restored);
      const float top_code = static_cast<float>((1 << bits) - 1);
      size_t outside = 0;
      for (size_t i = 0; i < weights.size(); ++i) {
        const size_t group = i / static_cast<size_t>(group_size);
        const float scale = result.scales[group];
        const float bias = result.biases[group];
        const float position = (weights[i] - bias) / scale;  // in steps from the edge
        const float slack = 1e-6f * (std::abs(weights[i]) + std::abs(bias));
        const float error = std::abs(weights[i] - restored[i]);
        if (position >= -0.5f && position <= top_code + 0.5f) {
          ASSERT_LE(error, std::abs(scale) * 0.5f * 1.0001f + slack)
              << bits << " " << group_size << " at " << i;
        } else {
          ++outside;
          ASSERT_LE(error, std::abs(scale) * 1.0001f + slack) << bits << " " << group_size << " at " << i;
        }
      }
      // Only the far end of a group can fall outside: at most one weight per group in this data.
      EXPECT_LE(outside, weights.size() / static_cast<size_t>(group_size)) << bits << " " << group_size;
    }
  }
}

// The edge weight is stored as the bias, so it comes back exactly; a zero lands on a grid point.
TEST(AffineQuant, EdgeIsExactAndZeroIsNearlyExact) {
  constexpr int64_t kRows = 8, kColumns = 256;
  const AffineParams params{4, 64};
  std::vector<float> weights = random_normal(kRows * kColumns, 77, 0.05f);
  for (size_t i = 0; i < weights.size(); i += 3) weights[i] = 0.0f;
  const AffineResult result = quantize(params, DType::F32, weights, kRows, kColumns);
  std::vector<float> restored(weights.size());
  affine_dequantize_rows(params, result.packed, result.scales, result.biases, kRows, kColumns, restored);
  for (size_t group = 0; group < result.scales.size(); ++group) {
    float edge = 0.0f;
    for (size_t i = group * 64; i < group * 64 + 64; ++i) {
      if (std::abs(weights[i]) > std::abs(edge)) edge = weights[i];
    }
    EXPECT_EQ(result.biases[group], edge) << group;
    for (size_t i = group * 64; i < group * 64 + 64; ++i) {
      if (std::abs(weights[i]) == std::abs(edge)) {
        EXPECT_EQ(restored[i], weights[i]) << i;
      }
      // Off by float rounding of edge / q0 * q0 only, far below half a step.
      if (weights[i] == 0.0f) {
        EXPECT_LE(std::abs(restored[i]), 1e-5f * std::abs(result.scales[group])) << i;
      }
    }
  }
}

}  // namespace
}  // namespace hlwq
