// MLX "affine" quantization (what mlx_lm convert -q writes): per group of input weights a scale and a
// bias, w ~ scale * q + bias with q in 0..2^bits-1, codes packed LSB-first into uint32 words.
// Bit-exact with mlx.core.quantize on MLX's CPU backend; docs/FORMAT_EXPORTS.md has the facts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"

namespace hlwq {

struct AffineParams {
  int bits = 4;         // 2, 3, 4, 5, 6 or 8
  int group_size = 64;  // 32, 64 or 128 consecutive input weights share one scale and bias
};

// Throws hlwq::Error naming the bad value and the allowed ones.
void validate(const AffineParams& params);

// mlx_lm's rule: a layer whose input dimension (columns) is not a multiple of the group size is
// left unquantized. Also false for columns <= 0.
bool affine_can_quantize(int64_t columns, const AffineParams& params);

// uint32 words per row of MLX's "weight" tensor: columns * bits / 32. Throws unless columns is a
// positive multiple of 32 and bits is an allowed width.
size_t affine_packed_words_per_row(int64_t columns, int bits);

// Quantizes a row-major [rows, columns] matrix exactly like mlx.core.quantize(w, group_size, bits)
// (mode "affine", CPU backend) does for the weight held in `scale_dtype` (BF16, F16 or F32): each
// weight is first rounded to scale_dtype (a no-op when it already is one), codes are computed in
// float32 with the unrounded scale and bias, and the returned scales and biases are rounded to
// scale_dtype. packed: rows * affine_packed_words_per_row; scales and biases: rows * columns /
// group_size. Throws hlwq::Error on bad parameters, sizes or a non-finite weight (the message names
// row and column; callers add the tensor name). Single-threaded: split rows across threads.
void affine_quantize_rows(const AffineParams& params, DType scale_dtype, std::span<const float> weights,
                          int64_t rows, int64_t columns, std::span<uint32_t> packed, std::span<float> scales,
                          std::span<float> biases);

// w = scale * q + bias in float32 (each operation rounded once). Equals mx.dequantize for F32 scales.
void affine_dequantize_rows(const AffineParams& params, std::span<const uint32_t> packed,
                            std::span<const float> scales, std::span<const float> biases, int64_t rows,
                            int64_t columns, std::span<float> weights);

// Like mx.dequantize on the CPU for scales and biases of `dtype`: the product and the sum are each
// rounded to dtype, w = round(round(scale * q) + bias), returned widened to float. Scales and biases
// are rounded to dtype first (a no-op for values affine_quantize_rows produced for that dtype).
void affine_dequantize_rows(const AffineParams& params, DType dtype, std::span<const uint32_t> packed,
                            std::span<const float> scales, std::span<const float> biases, int64_t rows,
                            int64_t columns, std::span<float> weights);

}  // namespace hlwq
