// CompressedTensors "pack-quantized" symmetric INT4 (vLLM loads it with its Marlin kernel): per group
// of input weights one scale, w ~ scale * q with q in -8..7, stored as (q + 8) nibbles, eight per
// int32, LSB first. docs/FORMAT_EXPORTS.md has the tensor names and the quantization_config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"

namespace hlwq {

// How the group scale follows from the group's largest magnitude m.
enum class Int4ScaleRule : uint8_t {
  // compressed-tensors' own rule (calculate_qparams, symmetric): scale s = m / 7.5. +-m map to
  // about +-7.5, so +m ends at code 7 (clipped) about s/2 off, no worse than a rounding error, and
  // all 16 codes are used with a step 7/7.5 of the m / 7 rule's (lower mean squared error).
  kCompressedTensors,
  // The HLWQ reference's rule: scale = m / 7. +-m are exact; code -8 is never used.
  kAbsmaxOver7,
};

struct Int4Params {
  int group_size = 128;  // 32, 64 or 128: the group sizes vLLM's Marlin kernel supports
  Int4ScaleRule scale_rule = Int4ScaleRule::kCompressedTensors;
};

// Throws hlwq::Error naming the bad value and the allowed ones.
void validate(const Int4Params& params);

// True when columns is a positive multiple of the group size (compressed-tensors refuses others).
bool int4_can_quantize(int64_t columns, const Int4Params& params);

// vLLM's Marlin kernel also needs output features (rows) % 64 == 0 and input features
// (columns) % 128 == 0 per tensor-parallel shard; true when the unsharded shape meets both.
bool int4_marlin_shape_ok(int64_t rows, int64_t columns);

// int32 words per row of "weight_packed": columns / 8. Throws unless columns is a positive multiple of 8.
size_t int4_packed_words_per_row(int64_t columns);

// Quantizes a row-major [rows, columns] matrix as compressed-tensors does for a weight held in
// `scale_dtype` (BF16, F16 or F32; the scale dtype is the weight's dtype there): weights are rounded to
// scale_dtype, scale = round(m / divisor) in scale_dtype (m = largest magnitude in the group; a zero
// scale becomes the dtype's epsilon), q = round_half_even(clamp(round_to_dtype(w / scale), -8, 7)).
// packed: rows * columns / 8 words of (q + 8) nibbles, LSB first (a word whose top nibble is >= 8 is
// a negative int32); scales: rows * columns / group_size, already rounded to scale_dtype. Throws
// hlwq::Error on bad parameters, sizes or a non-finite weight (callers add the tensor name).
void int4_quantize_rows(const Int4Params& params, DType scale_dtype, std::span<const float> weights,
                        int64_t rows, int64_t columns, std::span<int32_t> packed, std::span<float> scales);

// w = q * scale in float32. Exact (no rounding) for BF16 and F16 scales; rounding the result to the
// scale dtype gives what compressed-tensors' decompress returns.
void int4_dequantize_rows(const Int4Params& params, std::span<const int32_t> packed,
                          std::span<const float> scales, int64_t rows, int64_t columns,
                          std::span<float> weights);

}  // namespace hlwq
