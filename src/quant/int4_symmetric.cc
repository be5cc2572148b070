#include "quant/int4_symmetric.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "quant/float_rounding.h"
#include "quant/lsb_first_packing.h"

namespace hlwq {
namespace {

constexpr int kCodeOffset = 8;  // stored nibble = q + 8, vLLM's uint4b8 type
constexpr float kLowestCode = -8.0f;
constexpr float kHighestCode = 7.0f;

struct Int4Shape {
  size_t rows;
  size_t columns;
  size_t words_per_row;
  size_t groups_per_row;
};

Int4Shape checked_shape(const Int4Params& params, int64_t rows, int64_t columns) {
  validate(params);
  check(rows >= 0, "INT4 quantization got a negative row count ", rows);
  check(int4_can_quantize(columns, params), "INT4 quantization needs the column count to be a positive ",
        "multiple of the group size ", params.group_size, ", got ", columns);
  check(rows == 0 || rows <= std::numeric_limits<int64_t>::max() / columns,
        "INT4 quantization got a matrix too large to index: ", rows, " x ", columns);
  return {static_cast<size_t>(rows), static_cast<size_t>(columns), int4_packed_words_per_row(columns),
          static_cast<size_t>(columns / params.group_size)};
}

void check_sizes(const Int4Shape& shape, size_t weights, size_t packed, size_t scales) {
  check(weights == shape.rows * shape.columns && packed == shape.rows * shape.words_per_row &&
            scales == shape.rows * shape.groups_per_row,
        "INT4 buffers do not match a ", shape.rows, " x ", shape.columns, " matrix: weights ", weights,
        " (want ", shape.rows * shape.columns, "), packed ", packed, " (want ",
        shape.rows * shape.words_per_row, "), scales ", scales, " (want ", shape.rows * shape.groups_per_row,
        ")");
}

// torch.finfo(dtype).eps: compressed-tensors' replacement for a zero scale (an all-zero group).
float machine_epsilon(DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return 0x1p-7f;
    case DType::F16:
      return 0x1p-10f;
    default:
      return std::numeric_limits<float>::epsilon();
  }
}

float scale_divisor(Int4ScaleRule rule) {
  // compressed-tensors: (q_max - q_min) / 2 = (7 - (-8)) / 2.
  return rule == Int4ScaleRule::kCompressedTensors ? 7.5f : 7.0f;
}

[[noreturn]] void report_non_finite(std::span<const float> row_weights, const float* source, DType dtype,
                                    size_t row) {
  size_t column = 0;
  while (std::isfinite(row_weights[column])) ++column;
  fail("INT4 quantization got a non-finite weight (", source[column], " as ", dtype_name(dtype), ") at row ",
       row, ", column ", column);
}

}  // namespace

void validate(const Int4Params& params) {
  check(params.group_size == 32 || params.group_size == 64 || params.group_size == 128,
        "INT4 (compressed-tensors) quantization supports group sizes 32, 64 or 128, got ", params.group_size);
  check(params.scale_rule == Int4ScaleRule::kCompressedTensors ||
            params.scale_rule == Int4ScaleRule::kAbsmaxOver7,
        "INT4 quantization got an unknown scale rule ", static_cast<int>(params.scale_rule));
}

bool int4_can_quantize(int64_t columns, const Int4Params& params) {
  return columns > 0 && params.group_size > 0 && columns % params.group_size == 0;
}

bool int4_marlin_shape_ok(int64_t rows, int64_t columns) {
  return rows > 0 && columns > 0 && rows % 64 == 0 && columns % 128 == 0;
}

size_t int4_packed_words_per_row(int64_t columns) {
  check(columns > 0 && columns % 8 == 0, "INT4 packing needs a positive multiple of 8 columns, got ",
        columns);
  return static_cast<size_t>(columns) / 8;
}

void int4_quantize_rows(const Int4Params& params, DType scale_dtype, std::span<const float> weights,
                        int64_t rows, int64_t columns, std::span<int32_t> packed, std::span<float> scales) {
  check_scale_dtype(scale_dtype, "INT4 quantization");
  const Int4Shape shape = checked_shape(params, rows, columns);
  check_sizes(shape, weights.size(), packed.size(), scales.size());
  const size_t group_size = static_cast<size_t>(params.group_size);
  const float divisor = scale_divisor(params.scale_rule);
  std::vector<float> row_weights(shape.columns);
  std::vector<uint8_t> row_codes(shape.columns);

  for (size_t row = 0; row < shape.rows; ++row) {
    const float* source = weights.data() + row * shape.columns;
    bool all_finite = true;
    for (size_t column = 0; column < shape.columns; ++column) {
      row_weights[column] = round_to_dtype(source[column], scale_dtype);
      all_finite &= std::isfinite(row_weights[column]);
    }
    if (!all_finite) report_non_finite(row_weights, source, scale_dtype, row);
    for (size_t group_index = 0; group_index < shape.groups_per_row; ++group_index) {
      const size_t first_column = group_index * group_size;
      float largest_magnitude = 0.0f;
      for (size_t i = 0; i < group_size; ++i) {
        largest_magnitude = std::max(largest_magnitude, std::abs(row_weights[first_column + i]));
      }
      float scale = round_to_dtype(largest_magnitude / divisor, scale_dtype);
      if (scale == 0.0f) scale = machine_epsilon(scale_dtype);
      for (size_t i = 0; i < group_size; ++i) {
        // compressed-tensors divides in the weight dtype, so the quotient is rounded before the integer
        // rounding.
        const float quotient = round_to_dtype(row_weights[first_column + i] / scale, scale_dtype);
        const float code = round_half_even(std::clamp(quotient, kLowestCode, kHighestCode));
        row_codes[first_column + i] = static_cast<uint8_t>(static_cast<int>(code) + kCodeOffset);
      }
      scales[row * shape.groups_per_row + group_index] = scale;
    }
    const std::span<int32_t> row_words = packed.subspan(row * shape.words_per_row, shape.words_per_row);
    // The words are int32 on disk but carry raw bits; uint32_t and int32_t may alias each other.
    pack_lsb_first(row_codes, 4,
                   std::span<uint32_t>(reinterpret_cast<uint32_t*>(row_words.data()), row_words.size()));
  }
}

void int4_dequantize_rows(const Int4Params& params, std::span<const int32_t> packed,
                          std::span<const float> scales, int64_t rows, int64_t columns,
                          std::span<float> weights) {
  const Int4Shape shape = checked_shape(params, rows, columns);
  check_sizes(shape, weights.size(), packed.size(), scales.size());
  const size_t group_size = static_cast<size_t>(params.group_size);
  std::vector<uint8_t> row_codes(shape.columns);
  for (size_t row = 0; row < shape.rows; ++row) {
    const std::span<const int32_t> row_words = packed.subspan(row * shape.words_per_row, shape.words_per_row);
    unpack_lsb_first(
        std::span<const uint32_t>(reinterpret_cast<const uint32_t*>(row_words.data()), row_words.size()), 4,
        row_codes);
    for (size_t column = 0; column < shape.columns; ++column) {
      const float scale = scales[row * shape.groups_per_row + column / group_size];
      weights[row * shape.columns + column] = static_cast<float>(row_codes[column] - kCodeOffset) * scale;
    }
  }
}

}  // namespace hlwq
