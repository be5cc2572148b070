// One weight value at a time from each storage format, for the kernels that write weights out
// (prefill scratch, embedding rows) rather than multiply them in registers: codes located by
// index arithmetic, bytes read through the read-only cache. The GEMV kernels have their own
// unit-at-a-time decoders; these are tested against the same CPU functions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ops/cuda/gemv_common.cuh"
#include "ops/cuda/hlwq_planes.cuh"

namespace hlwq::cuda::kernels {

// Code of position `i` (0 <= i < block) of a block whose packed bytes start at block_codes.
template <int kBits>
__device__ __forceinline__ uint32_t hlwq_code_at(const uint8_t* block_codes, int i, int block_log2) {
  constexpr PlaneGeometry kPlanes = plane_geometry(kBits);
  uint32_t code = 0;
  int64_t start = 0;
#pragma unroll
  for (int p = 0; p < kPlanes.count; ++p) {
    const int log2_bytes = block_log2 + (kPlanes.width[p] == 4 ? 2 : kPlanes.width[p] == 2 ? 1 : 0) - 3;
    const uint32_t byte = __ldg(block_codes + start + (i & ((1 << log2_bytes) - 1)));
    const int field = i >> log2_bytes;
    code |= ((byte >> (kPlanes.width[p] * field)) & ((1u << kPlanes.width[p]) - 1)) << kPlanes.first_bit[p];
    start += int64_t{1} << log2_bytes;
  }
  return code;
}

// MLX affine code of column `column` of a row of packed words (codes may cross a word).
__device__ __forceinline__ uint32_t affine_code_at(const uint32_t* row_words, int64_t column, int bits) {
  const int64_t bit = column * bits;
  const int64_t word = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  uint32_t code = __ldg(row_words + word) >> shift;
  if (shift + bits > 32) code |= __ldg(row_words + word + 1) << (32 - shift);
  return code & ((1u << bits) - 1);
}

__device__ __forceinline__ float round_to_stored(float value, StoredFloat type) {
  switch (type) {
    case StoredFloat::f16: return __half2float(__float2half_rn(value));
    case StoredFloat::bf16: return __bfloat162float(__float2bfloat16_rn(value));
    default: return value;
  }
}

}  // namespace hlwq::cuda::kernels
