#include "quant/affine_quant.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "quant/float_rounding.h"
#include "quant/lsb_first_packing.h"

namespace hlwq {
namespace {

// MLX's floor on the scale, so that a constant group does not divide by zero.
constexpr float kMlxScaleFloor = 1e-7f;
constexpr int kMaxGroupSize = 128;

bool is_allowed_bits(int bits) { return bits >= 2 && bits <= 8 && bits != 7; }

struct AffineShape {
  size_t rows;
  size_t columns;
  size_t words_per_row;
  size_t groups_per_row;
};

AffineShape checked_shape(const AffineParams& params, int64_t rows, int64_t columns) {
  validate(params);
  check(rows >= 0, "MLX affine quantization got a negative row count ", rows);
  check(affine_can_quantize(columns, params),
        "MLX affine quantization needs the column count to be a positive ", "multiple of the group size ",
        params.group_size, ", got ", columns);
  check(rows == 0 || rows <= std::numeric_limits<int64_t>::max() / columns,
        "MLX affine quantization got a matrix too large to index: ", rows, " x ", columns);
  return {static_cast<size_t>(rows), static_cast<size_t>(columns),
          affine_packed_words_per_row(columns, params.bits),
          static_cast<size_t>(columns / params.group_size)};
}

void check_sizes(const AffineShape& shape, size_t weights, size_t packed, size_t scales, size_t biases) {
  const size_t groups = shape.rows * shape.groups_per_row;
  check(weights == shape.rows * shape.columns && packed == shape.rows * shape.words_per_row &&
            scales == groups && biases == groups,
        "MLX affine buffers do not match a ", shape.rows, " x ", shape.columns, " matrix: weights ", weights,
        " (want ", shape.rows * shape.columns, "), packed ", packed, " (want ",
        shape.rows * shape.words_per_row, "), scales ", scales, " and biases ", biases, " (want ", groups,
        ")");
}

// The scale and bias codes are computed with: float32, before rounding to the weight dtype.
struct GroupAffine {
  float scale;
  float bias;
};

// MLX's choice: the group's value of largest magnitude (the "edge") becomes code 0 and is stored
// exactly as the bias; the scale is then nudged so that a whole number of steps from the edge lands on
// zero (up to float rounding), so zero weights, common after pruning or padding, come back as ~0. The
// scale is negative when the edge is the maximum, so codes still count upwards from the edge. Cost: the
// nudged grid can end up to one step short of the far end, whose weights then clip (error up to one
// step instead of half a step).
GroupAffine affine_group_parameters(std::span<const float> group, float top_code) {
  float minimum = std::numeric_limits<float>::infinity();
  float maximum = -minimum;
  for (const float weight : group) {
    maximum = std::max(maximum, weight);
    minimum = std::min(minimum, weight);
  }
  const bool edge_is_minimum = std::abs(minimum) > std::abs(maximum);
  float scale = std::max((maximum - minimum) / top_code, kMlxScaleFloor);
  if (!edge_is_minimum) scale = -scale;
  const float edge = edge_is_minimum ? minimum : maximum;
  const float steps_to_zero = round_half_even(edge / scale);
  if (steps_to_zero == 0.0f) return {scale, 0.0f};  // |edge| below half a step: the group is ~zero
  return {edge / steps_to_zero, edge};
}

// round((weight - bias) / scale) clipped to [0, top_code]. A NaN quotient (reachable only for weights
// near the float limit, where MLX itself converts NaN to an integer, undefined behaviour) gives 0.
uint8_t affine_code(float weight, GroupAffine affine, float top_code) {
  const float code = round_half_even((weight - affine.bias) / affine.scale);
  if (!(code > 0.0f)) return 0;
  return static_cast<uint8_t>(std::min(code, top_code));
}

[[noreturn]] void report_non_finite(std::span<const float> group, const float* source, DType dtype,
                                    size_t row, size_t first_column) {
  size_t i = 0;
  while (std::isfinite(group[i])) ++i;
  fail("MLX affine quantization got a non-finite weight (", source[i], " as ", dtype_name(dtype), ") at row ",
       row, ", column ", first_column + i);
}

}  // namespace

void validate(const AffineParams& params) {
  check(is_allowed_bits(params.bits), "MLX affine quantization supports 2, 3, 4, 5, 6 or 8 bits, got ",
        params.bits);
  check(params.group_size == 32 || params.group_size == 64 || params.group_size == 128,
        "MLX affine quantization supports group sizes 32, 64 or 128, got ", params.group_size);
}

bool affine_can_quantize(int64_t columns, const AffineParams& params) {
  return columns > 0 && params.group_size > 0 && columns % params.group_size == 0;
}

size_t affine_packed_words_per_row(int64_t columns, int bits) {
  check(is_allowed_bits(bits), "MLX affine quantization supports 2, 3, 4, 5, 6 or 8 bits, got ", bits);
  check(columns > 0 && columns % 32 == 0, "MLX affine packing needs a positive multiple of 32 columns, got ",
        columns);
  return static_cast<size_t>(columns) / 32 * static_cast<size_t>(bits);
}

void affine_quantize_rows(const AffineParams& params, DType scale_dtype, std::span<const float> weights,
                          int64_t rows, int64_t columns, std::span<uint32_t> packed, std::span<float> scales,
                          std::span<float> biases) {
  check_scale_dtype(scale_dtype, "MLX affine quantization");
  const AffineShape shape = checked_shape(params, rows, columns);
  check_sizes(shape, weights.size(), packed.size(), scales.size(), biases.size());
  const size_t group_size = static_cast<size_t>(params.group_size);
  const float top_code = static_cast<float>((1 << params.bits) - 1);
  std::vector<uint8_t> row_codes(shape.columns);
  std::array<float, kMaxGroupSize> group_buffer;
  const std::span<float> group(group_buffer.data(), group_size);

  for (size_t row = 0; row < shape.rows; ++row) {
    for (size_t group_index = 0; group_index < shape.groups_per_row; ++group_index) {
      const size_t first_column = group_index * group_size;
      const float* source = weights.data() + row * shape.columns + first_column;
      bool all_finite = true;
      for (size_t i = 0; i < group_size; ++i) {
        group[i] = round_to_dtype(source[i], scale_dtype);
        all_finite &= std::isfinite(group[i]);
      }
      if (!all_finite) report_non_finite(group, source, scale_dtype, row, first_column);
      const GroupAffine affine = affine_group_parameters(group, top_code);
      for (size_t i = 0; i < group_size; ++i) {
        row_codes[first_column + i] = affine_code(group[i], affine, top_code);
      }
      const size_t group_slot = row * shape.groups_per_row + group_index;
      scales[group_slot] = round_to_dtype(affine.scale, scale_dtype);
      biases[group_slot] = round_to_dtype(affine.bias, scale_dtype);
    }
    pack_lsb_first(row_codes, params.bits, packed.subspan(row * shape.words_per_row, shape.words_per_row));
  }
}

void affine_dequantize_rows(const AffineParams& params, DType dtype, std::span<const uint32_t> packed,
                            std::span<const float> scales, std::span<const float> biases, int64_t rows,
                            int64_t columns, std::span<float> weights) {
  check_scale_dtype(dtype, "MLX affine dequantization");
  const AffineShape shape = checked_shape(params, rows, columns);
  check_sizes(shape, weights.size(), packed.size(), scales.size(), biases.size());
  const size_t group_size = static_cast<size_t>(params.group_size);
  std::vector<uint8_t> row_codes(shape.columns);
  for (size_t row = 0; row < shape.rows; ++row) {
    unpack_lsb_first(packed.subspan(row * shape.words_per_row, shape.words_per_row), params.bits, row_codes);
    for (size_t column = 0; column < shape.columns; ++column) {
      const size_t group_slot = row * shape.groups_per_row + column / group_size;
      const float scale = round_to_dtype(scales[group_slot], dtype);
      const float bias = round_to_dtype(biases[group_slot], dtype);
      const float product = round_to_dtype(scale * static_cast<float>(row_codes[column]), dtype);
      weights[row * shape.columns + column] = round_to_dtype(product + bias, dtype);
    }
  }
}

void affine_dequantize_rows(const AffineParams& params, std::span<const uint32_t> packed,
                            std::span<const float> scales, std::span<const float> biases, int64_t rows,
                            int64_t columns, std::span<float> weights) {
  affine_dequantize_rows(params, DType::F32, packed, scales, biases, rows, columns, weights);
}

}  // namespace hlwq
