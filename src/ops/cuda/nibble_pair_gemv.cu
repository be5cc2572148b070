// Version 4 of the 4-bit MLX affine and CompressedTensors INT4 decode products (batch 1..16): nibbles
// become fp16 pairs with two integer instructions and one half subtraction, and tensor cores do the
// multiply-adds (the scheme of hlwq_pair_gemv.cu, without its table).
//
// Why: versions 1-3 of these formats convert and multiply one code at a time (shift, mask, exact
// integer-to-float, FMA: about 5-7 warp instructions a code) and reach a quarter to a third of the
// read bandwidth on Llama-3-8B's shapes (docs/KERNELS.md). Here one AND-OR of a word of 8 nibbles
// with 0x000F000F and the fp16 exponent of 1024 gives half2(1024 + n_i, 1024 + n_{i+4}), one half2
// subtraction of 1024 (MLX: q) or 1032 (INT4: n - 8) makes them the integer weights exactly, and
// mma.m16n8k16 multiplies 16 rows x 16 codes with up to 8 rows of x, summing in fp32. About 1.5
// instructions a code.
//
// Layout: a warp owns a 16-row tile and walks 128-column chunks; in each 64-column half of a chunk,
// thread quad (0..3) of a 4-thread group holds columns 16 quad .. 16 quad + 15 of its low row (group)
// and high row (group + 8): two code words, whose 8 pairs (columns 8w + i, 8w + i + 4) fill the A
// registers of 4 mma steps. The scale (and MLX's bias) of a half multiplies its 4 steps' sums, so
// groups of 64 and any multiple of 64 work. x is laid out the same way first (pair_activations):
// word 4 (j / 8) + j % 4 of a row holds column j in its half (j % 8) / 4, and each 64-column half's
// sum of x (in fp32, from the unrounded x) serves the bias: sum_j (s q_j + b) x_j = s q.x + b sum x.
//
// Precision: x is rounded to fp16 (relative 2^-11, random over the terms); the integer weights are
// exact in fp16 and the products in fp32: relative error of a product about 2e-4.
#include <cuda_fp16.h>

#include "ops/cuda/gemv_common.cuh"

namespace hlwq::cuda::kernels {
namespace {

constexpr int kNibbleWarps = 4;
constexpr int kNibbleThreads = kNibbleWarps * 32;
constexpr int kTileRows = 16;
constexpr int kMmaColumns = 8;  // N of the mma: rows of x per n-tile
constexpr int kNibbleMaxBatch = 16;
constexpr int kChunkColumns = 128;
constexpr int kHalfColumns = 64;

__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Nibbles kIndex and kIndex + 4 of word as half2(1024 + n, 1024 + n') minus `offset` (half2 bits).
template <int kIndex>
__device__ __forceinline__ uint32_t nibble_pair(uint32_t word, uint32_t offset) {
  const uint32_t biased = ((word >> (4 * kIndex)) & 0x000F000Fu) | 0x64006400u;
  const __half2 value = __hsub2(*reinterpret_cast<const __half2*>(&biased), *reinterpret_cast<const __half2*>(&offset));
  return *reinterpret_cast<const uint32_t*>(&value);
}

// x (batch x columns floats) -> pairs (batch x columns / 2 words, the layout above) and half_sums
// (batch x columns / 64 floats). One CTA of 64 threads per 64 columns of one row of x.
__global__ void pair_activations_kernel(const float* x, int64_t columns, __half* pairs, float* half_sums) {
  const int i = threadIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kHalfColumns + i;
  const float v = x[b * columns + j];
  pairs[b * columns + 2 * (4 * (j / 8) + j % 4) + (j % 8) / 4] = __float2half_rn(v);
  __shared__ float warp_sums[2];
  const float sum = warp_sum(v);
  if ((i & 31) == 0) warp_sums[i / 32] = sum;
  __syncthreads();
  if (i == 0) half_sums[b * (columns / kHalfColumns) + blockIdx.x] = warp_sums[0] + warp_sums[1];
}

// The weight side of a format: 4-bit code words (8 a row's 32-bit word, LSB first), a scale per
// group, MLX's bias per group.
struct NibbleWeight {
  const uint32_t* packed = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;  // null for INT4
  StoredFloat scale_type = StoredFloat::f32;
  int64_t rows = 0, columns = 0;
  int group = 0;
  uint32_t offset = 0;  // half2 bits subtracted from 1024 + n: 1024 (MLX) or 1032 (INT4)
};

template <int kTiles>
struct HalfLoads {
  uint2 low, high;      // the thread's 2 code words of its low and high row
  uint4 x[kTiles][2];   // its 8 pair words of x row group + 8 n
  float scale_low, scale_high, bias_low, bias_high;
  float sum_even[kTiles], sum_odd[kTiles];  // the half's sum of x rows 8 n + 2 quad and 8 n + 2 quad + 1
};

// kTiles n-tiles of 8 rows of x: 1 for batches 1..8, 2 for 9..16.
template <int kTiles>
__global__ void __launch_bounds__(kNibbleThreads) nibble_pair_gemv_kernel(NibbleWeight weight, const uint32_t* pairs,
                                                                          const float* half_sums, int batch,
                                                                          float* y) {
  __shared__ float partial[kNibbleWarps][kTileRows][kTiles * kMmaColumns];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = lane >> 2, quad = lane & 3;
  const int64_t tile = blockIdx.x;
  const int64_t row_words = weight.columns / 8;
  const int64_t halves = weight.columns / kHalfColumns;
  const int64_t groups = weight.columns / weight.group;
  const int64_t row_low = min(tile * kTileRows + group, weight.rows - 1);
  const int64_t row_high = min(tile * kTileRows + group + 8, weight.rows - 1);
  const uint32_t* codes_low = weight.packed + row_low * row_words + quad * 2;
  const uint32_t* codes_high = weight.packed + row_high * row_words + quad * 2;
  bool has_x[kTiles];
  const uint32_t* x_pairs[kTiles];
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    has_x[n] = group + kMmaColumns * n < batch;
    x_pairs[n] = pairs + (has_x[n] ? group + kMmaColumns * n : 0) * (weight.columns / 2) + quad * 8;
  }
  const bool affine = weight.biases != nullptr;

  auto load_half = [&](int64_t half, HalfLoads<kTiles>& into) {
    into.low = __ldg(reinterpret_cast<const uint2*>(codes_low + half * 8));
    into.high = __ldg(reinterpret_cast<const uint2*>(codes_high + half * 8));
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        into.x[n][i] =
            has_x[n] ? __ldg(reinterpret_cast<const uint4*>(x_pairs[n] + half * 32) + i) : make_uint4(0, 0, 0, 0);
      }
    }
    const int64_t group_index = half * kHalfColumns / weight.group;
    into.scale_low = stored_float(weight.scales, row_low * groups + group_index, weight.scale_type);
    into.scale_high = stored_float(weight.scales, row_high * groups + group_index, weight.scale_type);
    into.bias_low = into.bias_high = 0.0f;
    if (affine) {
      into.bias_low = stored_float(weight.biases, row_low * groups + group_index, weight.scale_type);
      into.bias_high = stored_float(weight.biases, row_high * groups + group_index, weight.scale_type);
    }
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      const int even = kMmaColumns * n + 2 * quad;
      into.sum_even[n] = affine && even < batch ? __ldg(half_sums + even * halves + half) : 0.0f;
      into.sum_odd[n] = affine && even + 1 < batch ? __ldg(half_sums + (even + 1) * halves + half) : 0.0f;
    }
  };

  // Per n-tile n: (row group, x row 8n + 2 quad), (group, 8n + 2 quad + 1), (group + 8, ...) x 2.
  float acc[kTiles][4] = {};
  // Warp w takes halves w, w + 4, ...; the next one loads while this one multiplies.
  HalfLoads<kTiles> current;
  if (warp < halves) load_half(warp, current);
  for (int64_t half = warp; half < halves; half += kNibbleWarps) {
    HalfLoads<kTiles> next;
    if (half + kNibbleWarps < halves) load_half(half + kNibbleWarps, next);
    float d[kTiles][4] = {};
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      // Pairs 2s and 2s + 1 of the thread's 8: word s / 2, nibbles 2 (s % 2) and 2 (s % 2) + 1.
      const uint32_t low = s / 2 == 0 ? current.low.x : current.low.y;
      const uint32_t high = s / 2 == 0 ? current.high.x : current.high.y;
      uint32_t a[4];
      if (s % 2 == 0) {
        a[0] = nibble_pair<0>(low, weight.offset);
        a[1] = nibble_pair<0>(high, weight.offset);
        a[2] = nibble_pair<1>(low, weight.offset);
        a[3] = nibble_pair<1>(high, weight.offset);
      } else {
        a[0] = nibble_pair<2>(low, weight.offset);
        a[1] = nibble_pair<2>(high, weight.offset);
        a[2] = nibble_pair<3>(low, weight.offset);
        a[3] = nibble_pair<3>(high, weight.offset);
      }
#pragma unroll
      for (int n = 0; n < kTiles; ++n) {
        const uint4& xv = current.x[n][s / 2];
        mma_m16n8k16(d[n], a, s % 2 == 0 ? xv.x : xv.z, s % 2 == 0 ? xv.y : xv.w);
      }
    }
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      acc[n][0] += fmaf(current.scale_low, d[n][0], current.bias_low * current.sum_even[n]);
      acc[n][1] += fmaf(current.scale_low, d[n][1], current.bias_low * current.sum_odd[n]);
      acc[n][2] += fmaf(current.scale_high, d[n][2], current.bias_high * current.sum_even[n]);
      acc[n][3] += fmaf(current.scale_high, d[n][3], current.bias_high * current.sum_odd[n]);
    }
    current = next;
  }
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    partial[warp][group][kMmaColumns * n + 2 * quad] = acc[n][0];
    partial[warp][group][kMmaColumns * n + 2 * quad + 1] = acc[n][1];
    partial[warp][group + 8][kMmaColumns * n + 2 * quad] = acc[n][2];
    partial[warp][group + 8][kMmaColumns * n + 2 * quad + 1] = acc[n][3];
  }
  __syncthreads();
  constexpr int kColumns = kTiles * kMmaColumns;
  for (int i = threadIdx.x; i < kTileRows * kColumns; i += kNibbleThreads) {
    const int r = i / kColumns, b = i % kColumns;
    const int64_t row = tile * kTileRows + r;
    if (b < batch && row < weight.rows) {
      float total = 0;
#pragma unroll
      for (int w = 0; w < kNibbleWarps; ++w) total += partial[w][r][b];
      y[b * weight.rows + row] = total;
    }
  }
}

bool nibble_shape_applies(int64_t rows, int64_t columns, int group, int64_t batch) {
  return rows >= 1 && columns >= kChunkColumns && columns % kChunkColumns == 0 && group >= kHalfColumns &&
         group % kHalfColumns == 0 && columns % group == 0 && batch >= 1 && batch <= kNibbleMaxBatch;
}

void launch(const NibbleWeight& weight, const float* x, int64_t batch, void* scratch, float* y, cudaStream_t stream) {
  auto* pairs = static_cast<__half*>(scratch);
  auto* half_sums = reinterpret_cast<float*>(pairs + batch * weight.columns);
  const dim3 grid(static_cast<unsigned>(weight.columns / kHalfColumns), static_cast<unsigned>(batch));
  pair_activations_kernel<<<grid, kHalfColumns, 0, stream>>>(x, weight.columns, pairs, half_sums);
  check_launch("4-bit GEMV activation pairs");
  const int64_t tiles = (weight.rows + kTileRows - 1) / kTileRows;
  if (tiles > 0x7fffffff) check_cuda(cudaErrorInvalidConfiguration, "4-bit GEMV (tensor-core pairs): too many rows");
  const auto* pair_words = reinterpret_cast<const uint32_t*>(pairs);
  if (batch <= kMmaColumns) {
    nibble_pair_gemv_kernel<1><<<static_cast<unsigned>(tiles), kNibbleThreads, 0, stream>>>(
        weight, pair_words, half_sums, static_cast<int>(batch), y);
  } else {
    nibble_pair_gemv_kernel<2><<<static_cast<unsigned>(tiles), kNibbleThreads, 0, stream>>>(
        weight, pair_words, half_sums, static_cast<int>(batch), y);
  }
  check_launch("4-bit GEMV (tensor-core pairs)");
}

}  // namespace

bool affine_pair_gemv_applies(const AffineView& weight, int64_t batch) {
  return weight.bits == 4 && nibble_shape_applies(weight.rows, weight.columns, weight.group, batch);
}

bool int4_pair_gemv_applies(const Int4View& weight, int64_t batch) {
  return nibble_shape_applies(weight.rows, weight.columns, weight.group, batch);
}

uint64_t nibble_pair_scratch_bytes(int64_t columns, int64_t batch) {
  // Pairs in fp16, then the halves' sums in fp32 (4-byte aligned: columns is a multiple of 128).
  return static_cast<uint64_t>(batch * columns) * sizeof(__half) +
         static_cast<uint64_t>(batch * (columns / kHalfColumns)) * sizeof(float);
}

void affine_pair_gemv(const AffineView& weight, const float* x, int64_t batch, void* scratch, float* y,
                      cudaStream_t stream) {
  NibbleWeight nibbles;
  nibbles.packed = weight.packed;
  nibbles.scales = weight.scales;
  nibbles.biases = weight.biases;
  nibbles.scale_type = weight.scale_type;
  nibbles.rows = weight.rows;
  nibbles.columns = weight.columns;
  nibbles.group = weight.group;
  nibbles.offset = 0x64006400u;  // half2(1024, 1024)
  launch(nibbles, x, batch, scratch, y, stream);
}

void int4_pair_gemv(const Int4View& weight, const float* x, int64_t batch, void* scratch, float* y,
                    cudaStream_t stream) {
  NibbleWeight nibbles;
  nibbles.packed = weight.packed;
  nibbles.scales = weight.scales;
  nibbles.scale_type = weight.scale_type;
  nibbles.rows = weight.rows;
  nibbles.columns = weight.columns;
  nibbles.group = weight.group;
  nibbles.offset = 0x64086408u;  // half2(1032, 1032)
  launch(nibbles, x, batch, scratch, y, stream);
}

}  // namespace hlwq::cuda::kernels
