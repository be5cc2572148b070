// Device helpers shared by the decode kernels (GEMV) of every weight format: the CTA shape, stored
// floats widened to float, exact small integers to float, the final reduction of the per-thread
// sums, and the batch tiles the kernels are compiled for.
//
// Shape of every GEMV: a CTA of kGemvThreads threads owns kGemvRows consecutive output rows and
// walks their whole width together, each thread taking 16-byte units of the weight in a strided
// loop (consecutive threads, consecutive units: coalesced). The activations of a unit are loaded
// once and multiplied with all kGemvRows rows (they come from L1, shared by every CTA on the SM),
// and with every row of x at once (up to the batch tile): the weight is read from memory once per
// call for any batch <= 16. The per-thread sums are reduced by warp shuffles and shared memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "ops/cuda/device_buffer.h"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/linear_kernels.h"

namespace hlwq::cuda::kernels {

inline constexpr int kGemvThreads = 128;
inline constexpr int kGemvWarps = kGemvThreads / 32;
// Rows per CTA (batch tiles 1 and 4): four rows share each activation load (L1 traffic per weight
// byte / 4) while a 1024-row matrix still gives 256 CTAs (about two per SM on 132 SMs).
inline constexpr int kGemvRows = 4;

__device__ __forceinline__ float stored_float(const void* base, int64_t index, StoredFloat type) {
  switch (type) {
    case StoredFloat::f16: return __half2float(static_cast<const __half*>(base)[index]);
    case StoredFloat::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
    default: return static_cast<const float*>(base)[index];
  }
}

// An integer 0 <= v < 2^23 as a float, exactly, without the slow integer-to-float converter:
// 2^23 + v has v in its mantissa, then subtract 2^23 (both steps exact).
__device__ __forceinline__ float small_uint_to_float(uint32_t v) {
  return __uint_as_float(0x4B000000u | v) - 8388608.0f;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sums acc over the CTA and writes y[b, first_row + r] for valid rows and b < batch.
template <int kRows, int kBatchTile>
__device__ __forceinline__ void reduce_and_store(float (&acc)[kRows][kBatchTile], int64_t first_row,
                                                 int64_t rows, int batch, float* y) {
  __shared__ float partial[kGemvWarps][kRows][kBatchTile];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int b = 0; b < kBatchTile; ++b) {
      const float total = warp_sum(acc[r][b]);
      if (lane == 0) partial[warp][r][b] = total;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kRows * kBatchTile; i += blockDim.x) {
    const int r = i / kBatchTile, b = i % kBatchTile;
    const int64_t row = first_row + r;
    if (b < batch && row < rows) {
      float total = 0;
#pragma unroll
      for (int w = 0; w < kGemvWarps; ++w) total += partial[w][r][b];
      y[b * rows + row] = total;
    }
  }
}

// The batch tiles kernels are compiled for: 1 (decode), 4 (small speculative batches), 16 (the
// rest up to kMaxGemvBatch). A smaller batch runs in the next tile up, skipping the missing rows.
// launch(std::integral_constant<int, kTile>) instantiates the kernel for the tile.
template <class Launch>
void with_batch_tile(int64_t batch, Launch&& launch) {
  if (batch == 1) {
    launch(std::integral_constant<int, 1>{});
  } else if (batch <= 4) {
    launch(std::integral_constant<int, 4>{});
  } else {
    launch(std::integral_constant<int, 16>{});
  }
}

// The 16-row tile holds 16 sums per weight row: with 4 weight rows it needs more than the 255
// registers a thread has (ptxas spilled 50-200 bytes), so it takes 2 rows per CTA.
__host__ __device__ constexpr int gemv_rows_per_cta(int batch_tile) { return batch_tile >= 16 ? 2 : kGemvRows; }

inline unsigned gemv_grid(int64_t rows, int batch_tile) {
  const int rows_per_cta = gemv_rows_per_cta(batch_tile);
  return static_cast<unsigned>((rows + rows_per_cta - 1) / rows_per_cta);
}

// Loads kBytes (4, 8, 16 or a multiple of 16) at an address aligned to min(kBytes, 16) as words.
template <int kBytes>
__device__ __forceinline__ void load_words(const void* address, uint32_t (&words)[kBytes / 4]) {
  if constexpr (kBytes % 16 == 0) {
#pragma unroll
    for (int i = 0; i < kBytes / 16; ++i) {
      const uint4 v = __ldg(static_cast<const uint4*>(address) + i);
      words[4 * i] = v.x, words[4 * i + 1] = v.y, words[4 * i + 2] = v.z, words[4 * i + 3] = v.w;
    }
  } else if constexpr (kBytes % 8 == 0) {
#pragma unroll
    for (int i = 0; i < kBytes / 8; ++i) {
      const uint2 v = __ldg(static_cast<const uint2*>(address) + i);
      words[2 * i] = v.x, words[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kBytes / 4; ++i) words[i] = __ldg(static_cast<const uint32_t*>(address) + i);
  }
}

__device__ __forceinline__ float4 load_float4(const float* address) {
  return __ldg(reinterpret_cast<const float4*>(address));
}

}  // namespace hlwq::cuda::kernels
