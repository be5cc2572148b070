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

// The 32-bit word that holds element `index` of a stored float array (F32: the element; F16, BF16:
// the aligned pair that holds it; such arrays are padded to whole words on the device), loaded as
// it is, so that nothing waits for the load where it is issued; stored_word_to_float widens it
// where it is used.
__device__ __forceinline__ uint32_t stored_word(const void* base, int64_t index, StoredFloat type) {
  return __ldg(static_cast<const uint32_t*>(base) + (type == StoredFloat::f32 ? index : index >> 1));
}
__device__ __forceinline__ float stored_word_to_float(uint32_t word, int64_t index, StoredFloat type) {
  const uint32_t bits16 = (index & 1) != 0 ? word >> 16 : word & 0xFFFFu;
  switch (type) {
    case StoredFloat::f16: return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
    case StoredFloat::bf16: return __uint_as_float(bits16 << 16);
    default: return __uint_as_float(word);
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

// The unnormalized Walsh-Hadamard transform of a block held one value a thread (thread i of the
// block's threads holds v = x[i]), in Sylvester order: strides 1, 2, 4, ..., lower = x + y,
// upper = x - y, the CPU's order and roundings, so GPU and CPU agree bit for bit. `values` is `block`
// floats of shared memory; every thread of the block must call it. Each thread computes its own
// output, so no thread idles.
__device__ __forceinline__ float sylvester_hadamard(float v, float* values, int i, int block) {
  values[i] = v;
  __syncthreads();
  for (int stride = 1; stride < block; stride <<= 1) {
    const float partner = values[i ^ stride];
    v = (i & stride) ? partner - v : v + partner;
    __syncthreads();
    values[i] = v;
    __syncthreads();
  }
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

// ---- Column-stationary GEMVs (batch 1): a CTA spans whole rows, thread t owning unit t of every
// row, so its activations stay in registers; a persistent grid walks groups of kRows rows. ----

// Rows of at most this many units take the column-stationary kernels (one thread per unit).
inline constexpr int kStationaryMaxThreads = 512;

// Sums each of v[0..kRows) over the warp; returns, in lane l, the sum of row l / (32 / kRows). A
// transposed tree: log2(kRows) halving steps (each lane keeps half the rows, sends the other half),
// then a plain butterfly: 6 shuffles for 4 rows instead of 20.
template <int kRows>
__device__ __forceinline__ float transposed_warp_sum(float (&v)[kRows]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int half = kRows / 2, offset = 16; half >= 1; half /= 2, offset /= 2) {
    const bool upper = (lane & offset) != 0;
#pragma unroll
    for (int i = 0; i < half; ++i) {
      const float send = upper ? v[i] : v[i + half];
      const float keep = upper ? v[i + half] : v[i];
      v[i] = keep + __shfl_xor_sync(0xffffffffu, send, offset);
    }
  }
#pragma unroll
  for (int offset = 16 / kRows; offset >= 1; offset /= 2) v[0] += __shfl_xor_sync(0xffffffffu, v[0], offset);
  return v[0];
}

// The persistent loop: groups blockIdx.x, + gridDim.x, ... of kRows rows; load(group, codes) fills
// a Codes for a group (issued one group ahead, two buffers), decode(codes, sums) gives this
// thread's kRows partial sums; the CTA's sums are reduced (transposed warp tree, then one thread
// per row over the warps' partials, one barrier a group) and stored in y.
template <int kRows, class Codes, class Load, class Decode>
__device__ __forceinline__ void stationary_row_groups(int64_t rows, float* y, Load&& load, Decode&& decode) {
  __shared__ float partial[2][kStationaryMaxThreads / 32][kRows];  // by group parity, warp, row
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32, lane = threadIdx.x % 32;
  const int64_t groups = (rows + kRows - 1) / kRows;
  const int64_t stride = gridDim.x;
  int parity = 0;
  auto step = [&](int64_t group, Codes& now, Codes& later) {
    if (group + stride < groups) load(group + stride, later);
    float sums[kRows];
    decode(now, sums);
    const float sum = transposed_warp_sum<kRows>(sums);
    if (lane % (32 / kRows) == 0) partial[parity][warp][lane / (32 / kRows)] = sum;
    __syncthreads();
    const int64_t row = group * kRows + threadIdx.x;
    if (threadIdx.x < kRows && row < rows) {
      float total = 0;
      for (int w = 0; w < warps; ++w) total += partial[parity][w][threadIdx.x];
      y[row] = total;
    }
    // The other buffer next: its last readers finished before this group's barrier.
    parity ^= 1;
  };
  Codes first, second;
  if (blockIdx.x < groups) load(blockIdx.x, first);
  for (int64_t group = blockIdx.x; group < groups; group += 2 * stride) {
    step(group, first, second);
    if (group + stride < groups) step(group + stride, second, first);
  }
}

// Threads and grid of a column-stationary kernel for rows of `units` units: one thread per unit
// (whole warps), as many CTAs as the SMs hold at once, at most one per group.
struct StationaryShape {
  int threads = 0;
  unsigned grid = 0;
};
template <class Kernel>
StationaryShape stationary_shape(Kernel kernel, int64_t units, int64_t groups) {
  StationaryShape shape;
  shape.threads = static_cast<int>((units + 31) / 32 * 32);
  int device = 0, sms = 0, per_sm = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, shape.threads, 0),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const int64_t most = int64_t{sms} * (per_sm > 0 ? per_sm : 1);
  shape.grid = static_cast<unsigned>(groups < most ? (groups > 0 ? groups : 1) : most);
  return shape;
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
