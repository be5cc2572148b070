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
// Layout: 1, 2 or 4 warps share a 16-row tile (tensor_core_tile.cuh) and walk its 64-column halves;
// in a half, thread quad (0..3) of a 4-thread group holds columns 16 quad .. 16 quad + 15 of its low row (group)
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
#include "ops/cuda/tensor_core_tile.cuh"

namespace hlwq::cuda::kernels {
namespace {

using namespace tensor_core;

constexpr int kChunkColumns = 128;
constexpr int kHalfColumns = 64;
// Halves a warp keeps in flight (tensor_core_tile.cuh): 6 x 512 bytes at batches 1..8; 2 at 9..16,
// where the 128 registers a thread has hold no more without spilling (3 did before x took a ring
// of two); even, since the ring of x is indexed by the slot's parity.
template <int kTiles>
constexpr int kAhead = kTiles == 1 ? 6 : 2;
static_assert(kAhead<1> % 2 == 0 && kAhead<2> % 2 == 0, "the ring of x is indexed by the slot's parity");

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

// The fields both views share; `biases` null for INT4, `offset` the subtrahend of the nibble pairs.
template <class View>
NibbleWeight nibble_weight(const View& weight, const void* biases, uint32_t offset) {
  NibbleWeight nibbles;
  nibbles.packed = weight.packed;
  nibbles.scales = weight.scales;
  nibbles.biases = biases;
  nibbles.scale_type = weight.scale_type;
  nibbles.rows = weight.rows;
  nibbles.columns = weight.columns;
  nibbles.group = weight.group;
  nibbles.offset = offset;
  return nibbles;
}

// What one thread loads kAhead halves ahead: its 2 code words of its low and high rows and the
// words that hold their group's scales and biases (kernels::stored_word: widened where they are
// used, see LoadRing). x and its sums are read two halves ahead instead, in a ring of two (shared
// by every CTA: from L1 or L2, a shorter latency). Threads past the last row of x read row 0's
// (a select after the load would wait for it); their sums land in columns that are not stored.
struct HalfLoads {
  uint2 low, high;
  uint32_t scale_low, scale_high, bias_low, bias_high;
};

// kTiles n-tiles of 8 rows of x: 1 for batches 1..8, 2 for 9..16.
template <int kTiles>
__global__ void __launch_bounds__(kThreads, kResidentCtasPerSm)
    nibble_pair_gemv_kernel(NibbleWeight weight, const uint32_t* pairs, const float* half_sums, int batch, float* y,
                            int warps_per_tile_log2) {
  __shared__ TilePartials<kTiles> partial;
  const int lane = threadIdx.x & 31;
  const int group = lane >> 2, quad = lane & 3;
  const int64_t tiles = (weight.rows + kTileRows - 1) / kTileRows;
  const int64_t row_words = weight.columns / 8;
  const int64_t halves = weight.columns / kHalfColumns;
  const int64_t groups = weight.columns / weight.group;
  const WarpShare share = warp_share(warps_per_tile_log2, tiles, halves);
  const int64_t row_low = min(share.tile * kTileRows + group, weight.rows - 1);
  const int64_t row_high = min(share.tile * kTileRows + group + 8, weight.rows - 1);
  const uint32_t* codes_low = weight.packed + row_low * row_words + quad * 2;
  const uint32_t* codes_high = weight.packed + row_high * row_words + quad * 2;
  const uint4* x_pairs[kTiles];
  const float* sums_even[kTiles];
  const float* sums_odd[kTiles];
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    const bool has_x = group + kMmaColumns * n < batch;
    x_pairs[n] =
        reinterpret_cast<const uint4*>(pairs + (has_x ? group + kMmaColumns * n : 0) * (weight.columns / 2) + quad * 8);
    const int even = kMmaColumns * n + 2 * quad;
    sums_even[n] = half_sums + (even < batch ? even : 0) * halves;
    sums_odd[n] = half_sums + (even + 1 < batch ? even + 1 : 0) * halves;
  }
  const bool affine = weight.biases != nullptr;
  // INT4 has no biases: its bias words are read from the scales (a valid address) and not used.
  const void* biases = affine ? weight.biases : weight.scales;

  auto load = [&](int64_t half, HalfLoads& into) {
    into.low = __ldg(reinterpret_cast<const uint2*>(codes_low + half * 8));
    into.high = __ldg(reinterpret_cast<const uint2*>(codes_high + half * 8));
    const int64_t group_index = half * kHalfColumns / weight.group;
    into.scale_low = stored_word(weight.scales, row_low * groups + group_index, weight.scale_type);
    into.scale_high = stored_word(weight.scales, row_high * groups + group_index, weight.scale_type);
    into.bias_low = stored_word(biases, row_low * groups + group_index, weight.scale_type);
    into.bias_high = stored_word(biases, row_high * groups + group_index, weight.scale_type);
  };

  LoadRing<kAhead<kTiles>, HalfLoads> ring;
  ring.start(share, load);
  // Per n-tile n: (row group, x row 8n + 2 quad), (group, 8n + 2 quad + 1), (group + 8, ...) x 2.
  // A half's x: the thread's 8 pair words of x row group + 8 n, and the half's sums of x rows
  // 8 n + 2 quad and 8 n + 2 quad + 1 (for the bias).
  struct HalfX {
    uint4 x[kTiles][2];
    float sum_even[kTiles], sum_odd[kTiles];
  };
  auto load_x = [&](int64_t half, HalfX& into) {
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
#pragma unroll
      for (int i = 0; i < 2; ++i) into.x[n][i] = __ldg(x_pairs[n] + half * 8 + i);
      into.sum_even[n] = __ldg(sums_even[n] + half);
      into.sum_odd[n] = __ldg(sums_odd[n] + half);
    }
  };
  HalfX x_ring[2];  // half k's x in x_ring[k % 2]
  if (share.count > 0) load_x(share.first, x_ring[0]);
  if (share.count > 1) load_x(share.first + share.stride, x_ring[1]);

  float acc[kTiles][4] = {};
  ring.run(share, load, [&](int64_t k, int64_t half, const HalfLoads& codes, int slot) {
    HalfX& current = x_ring[slot % 2];
    const auto& x = current.x;
    const auto& sum_even = current.sum_even;
    const auto& sum_odd = current.sum_odd;
    float d[kTiles][4] = {};
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      // Pairs 2s and 2s + 1 of the thread's 8: word s / 2, nibbles 2 (s % 2) and 2 (s % 2) + 1.
      const uint32_t low = s / 2 == 0 ? codes.low.x : codes.low.y;
      const uint32_t high = s / 2 == 0 ? codes.high.x : codes.high.y;
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
        const uint4& xv = x[n][s / 2];
        mma_m16n8k16(d[n], a, s % 2 == 0 ? xv.x : xv.z, s % 2 == 0 ? xv.y : xv.w);
      }
    }
    const int64_t group_index = half * kHalfColumns / weight.group;
    const float scale_low = stored_word_to_float(codes.scale_low, row_low * groups + group_index, weight.scale_type);
    const float scale_high = stored_word_to_float(codes.scale_high, row_high * groups + group_index, weight.scale_type);
    const float bias_low =
        affine ? stored_word_to_float(codes.bias_low, row_low * groups + group_index, weight.scale_type) : 0.0f;
    const float bias_high =
        affine ? stored_word_to_float(codes.bias_high, row_high * groups + group_index, weight.scale_type) : 0.0f;
    float sums[kTiles][2];
#pragma unroll
    for (int n = 0; n < kTiles; ++n) sums[n][0] = sum_even[n], sums[n][1] = sum_odd[n];
    if (k + 2 < share.count) load_x(half + 2 * share.stride, current);
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      acc[n][0] += fmaf(scale_low, d[n][0], bias_low * sums[n][0]);
      acc[n][1] += fmaf(scale_low, d[n][1], bias_low * sums[n][1]);
      acc[n][2] += fmaf(scale_high, d[n][2], bias_high * sums[n][0]);
      acc[n][3] += fmaf(scale_high, d[n][3], bias_high * sums[n][1]);
    }
  });
  store_tile_sums<kTiles>(acc, partial, warps_per_tile_log2, tiles, weight.rows, batch, y);
}

bool nibble_shape_applies(int64_t rows, int64_t columns, int group, int64_t batch) {
  return rows >= 1 && columns >= kChunkColumns && columns % kChunkColumns == 0 && group >= kHalfColumns &&
         group % kHalfColumns == 0 && columns % group == 0 && batch >= 1 && batch <= kMaxBatch;
}

void launch(const NibbleWeight& weight, const float* x, int64_t batch, void* scratch, float* y, cudaStream_t stream) {
  auto* pairs = static_cast<__half*>(scratch);
  auto* half_sums = reinterpret_cast<float*>(pairs + batch * weight.columns);
  const dim3 grid(static_cast<unsigned>(weight.columns / kHalfColumns), static_cast<unsigned>(batch));
  pair_activations_kernel<<<grid, kHalfColumns, 0, stream>>>(x, weight.columns, pairs, half_sums);
  check_launch("4-bit GEMV activation pairs");
  const TileSpread spread = spread_tiles((weight.rows + kTileRows - 1) / kTileRows);
  const auto* pair_words = reinterpret_cast<const uint32_t*>(pairs);
  if (batch <= kMmaColumns) {
    nibble_pair_gemv_kernel<1><<<spread.ctas, kThreads, 0, stream>>>(weight, pair_words, half_sums,
                                                                     static_cast<int>(batch), y,
                                                                     spread.warps_per_tile_log2);
  } else {
    nibble_pair_gemv_kernel<2><<<spread.ctas, kThreads, 0, stream>>>(weight, pair_words, half_sums,
                                                                     static_cast<int>(batch), y,
                                                                     spread.warps_per_tile_log2);
  }
  check_launch("4-bit GEMV (tensor-core pairs)");
}

}  // namespace

bool nibble_pair_gemv_applies(const AffineView& weight, int64_t batch) {
  return weight.bits == 4 && nibble_shape_applies(weight.rows, weight.columns, weight.group, batch);
}

bool nibble_pair_gemv_applies(const Int4View& weight, int64_t batch) {
  return nibble_shape_applies(weight.rows, weight.columns, weight.group, batch);
}

uint64_t nibble_pair_scratch_bytes(int64_t columns, int64_t batch) {
  // Pairs in fp16, then the halves' sums in fp32 (4-byte aligned: columns is a multiple of 128).
  return static_cast<uint64_t>(batch * columns) * sizeof(__half) +
         static_cast<uint64_t>(batch * (columns / kHalfColumns)) * sizeof(float);
}

void nibble_pair_gemv(const AffineView& weight, const float* x, int64_t batch, void* scratch, float* y,
                      cudaStream_t stream) {
  launch(nibble_weight(weight, weight.biases, 0x64006400u), x, batch, scratch, y, stream);  // half2(1024, 1024)
}

void nibble_pair_gemv(const Int4View& weight, const float* x, int64_t batch, void* scratch, float* y,
                      cudaStream_t stream) {
  launch(nibble_weight(weight, nullptr, 0x64086408u), x, batch, scratch, y, stream);  // half2(1032, 1032)
}

}  // namespace hlwq::cuda::kernels
