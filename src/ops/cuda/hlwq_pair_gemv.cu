// Version 4 of the HLWQ decode product (Q4, blocks of 128 or more, batch 1..16): codes become fp16
// through a table of code pairs, and tensor cores do the multiply-adds.
//
// Why: versions 1-3 spend about 7 warp instructions a code (unpack, codebook read, FMA) and issue
// bound at about a third of the read bandwidth (docs/KERNELS.md). Here a byte of the first plane
// (codes j and j + P of a block, P = block / 2) is one index into a 256-entry table of half2 pairs
// (c[low nibble], c[high nibble]): one shift, one AND-OR and one shared load give two fp16 weights,
// already in the register layout of an mma.sync A fragment. mma.m16n8k16 then multiplies 16 rows x 16
// codes with 8 rows of x in one instruction (two for batches 9..16), summing in fp32. About 1.6 instructions a code.
//
// The pairing of codes fixes the order of the reduction axis: in each 64-byte chunk of a row, thread
// quad (0..3) of a warp's 4-thread group holds bytes 16 quad .. 16 quad + 15 (one 16-byte load), and
// mma step s uses its bytes 2s (k = 2 quad, 2 quad + 1 of the mma) and 2s + 1 (k = 2 quad + 8, + 9).
// x is stored the same way by the rotation (hlwq_rotate_activations): word j of a block's pairs is
// half2(x'[j], x'[j + P]), so the B fragment of step s is words 2s and 2s + 1 of the same 16.
//
// The table holds 32 copies, copy l at bank l (word 32 e + l): lane l reads its own copy, so the
// lookups of a warp never conflict (one copy would cost about 3.5 wavefronts a lookup for random
// codes). 32 KB a CTA, filled with 16 stores of 16 bytes per thread.
//
// Precision: x' and the codebook are rounded to fp16 (relative 2^-11 each, random over the terms),
// products are exact in fp32 and sums are fp32: relative error of a product about 3e-4, three
// orders of magnitude under the Q4 format's own error (about 10%). Block gains multiply in fp32.
#include <cuda_fp16.h>

#include "ops/cuda/gemv_common.cuh"
#include "ops/cuda/hlwq_pair_gemv.cuh"
#include "ops/cuda/tensor_core_tile.cuh"
#include "ops/cuda/hlwq_planes.cuh"

namespace hlwq::cuda::kernels {
namespace {

using namespace tensor_core;

constexpr int kChunkBytes = 64;   // a row's bytes one warp covers in 8 mma steps
constexpr int kChunkWords = 64;   // the pair words of x a chunk multiplies (128 codes, 2 a word)
constexpr int kTableEntries = 256;
constexpr int kTableCopies = 32;
// Chunks a warp keeps in flight (tensor_core_tile.cuh): 4 x 1 KB at batches 1..8; 2 at 9..16,
// where the second n-tile's registers leave little room (ptxas spills 24 bytes a thread) and each
// chunk carries twice the tensor-core work to hide latency behind.
template <int kTiles>
constexpr int kAhead = kTiles == 1 ? 4 : 2;
static_assert(kAhead<1> % 2 == 0 && kAhead<2> % 2 == 0, "the ring of x is indexed by the slot's parity");

__device__ __forceinline__ uint32_t half2_bits(float low, float high) {
  const __half2 pair = __floats2half2_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// Byte offset in the table of this lane's copy of the entry for byte kShift / 8 of word: the byte
// times 128 (32 copies of 4 bytes), OR the lane's 4 lane bytes (bits 2..6, disjoint from the byte's).
template <int kShift>
__device__ __forceinline__ uint32_t table_offset(uint32_t word, uint32_t lane_bytes) {
  const uint32_t shifted = kShift >= 7 ? word >> (kShift - 7) : word << (7 - kShift);
  return (shifted & (0xFFu << 7)) | lane_bytes;
}

// What one thread loads kAhead chunks ahead: 16 code bytes of its low row (group) and of its high
// row (group + 8), and the two rows' block gains as stored (fp16 bits, widened where they are used:
// see LoadRing). Its 16 pair words of x (row group + 8 n) are read two chunks ahead instead, in a
// ring of two: they are shared by every CTA, so they come from L1 or L2 (a shorter latency), and
// they take twice the registers of the codes. Threads past the last row of x read row 0's pairs
// (a select after the load would wait for it); their sums land in columns that are not stored.
struct ChunkLoads {
  uint4 low, high;
  unsigned short gain_low, gain_high;
};

// kTiles n-tiles of 8 rows of x: 1 for batches 1..8, 2 for 9..16 (each weight fragment feeds two mma).
template <int kTiles>
__global__ void __launch_bounds__(kThreads, kResidentCtasPerSm)
    hlwq_pair_gemv_kernel(HlwqView weight, const uint32_t* pairs, int batch, float* y, int chunks_per_block_log2,
                          int warps_per_tile_log2) {
  __shared__ __align__(16) uint32_t table[kTableEntries * kTableCopies];
  __shared__ TilePartials<kTiles> partial;

  const int lane = threadIdx.x & 31;
  const int group = lane >> 2, quad = lane & 3;
  const uint32_t lane_bytes = static_cast<uint32_t>(lane) * 4;
  const int64_t tiles = (weight.rows + kTileRows - 1) / kTileRows;
  const WarpShare share = warp_share(warps_per_tile_log2, tiles, weight.code_bytes / kChunkBytes);
  const int64_t row_low = min(share.tile * kTileRows + group, weight.rows - 1);
  const int64_t row_high = min(share.tile * kTileRows + group + 8, weight.rows - 1);
  const unsigned char* codes_low = weight.codes + row_low * weight.code_bytes + quad * 16;
  const unsigned char* codes_high = weight.codes + row_high * weight.code_bytes + quad * 16;
  const uint16_t* gains_low = weight.gains + row_low * weight.blocks;
  const uint16_t* gains_high = weight.gains + row_high * weight.blocks;
  const int64_t pair_words = weight.padded_columns / 2;  // per row of x
  const uint4* x_pairs[kTiles];
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    const bool has_x = group + kMmaColumns * n < batch;
    x_pairs[n] = reinterpret_cast<const uint4*>(pairs + (has_x ? group + kMmaColumns * n : 0) * pair_words +
                                                quad * 16);
  }

  auto load = [&](int64_t chunk, ChunkLoads& into) {
    into.low = __ldg(reinterpret_cast<const uint4*>(codes_low + chunk * kChunkBytes));
    into.high = __ldg(reinterpret_cast<const uint4*>(codes_high + chunk * kChunkBytes));
    const int64_t block_index = chunk >> chunks_per_block_log2;
    into.gain_low = __ldg(gains_low + block_index);
    into.gain_high = __ldg(gains_high + block_index);
  };

  // The first chunks' loads go out before the table is built, so its latency hides theirs.
  LoadRing<kAhead<kTiles>, ChunkLoads> ring;
  ring.start(share, load);
  for (int entry = threadIdx.x; entry < kTableEntries; entry += kThreads) {
    const uint32_t value = half2_bits(__ldg(weight.centroids + (entry & 15)), __ldg(weight.centroids + (entry >> 4)));
    uint4* copies = reinterpret_cast<uint4*>(table + entry * kTableCopies);
#pragma unroll
    for (int i = 0; i < kTableCopies / 4; ++i) copies[i] = make_uint4(value, value, value, value);
  }
  __syncthreads();
  const char* table_bytes = reinterpret_cast<const char*>(table);
  auto lookup = [&](uint32_t offset) { return *reinterpret_cast<const uint32_t*>(table_bytes + offset); };

  auto load_x = [&](int64_t chunk, uint4 (&into)[kTiles][4]) {
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        into[n][i] = __ldg(x_pairs[n] + chunk * (kChunkWords / 4) + i);
      }
    }
  };
  uint4 x_ring[2][kTiles][4];  // chunk k's x in x_ring[k % 2]
  if (share.count > 0) load_x(share.first, x_ring[0]);
  if (share.count > 1) load_x(share.first + share.stride, x_ring[1]);

  float acc[kTiles][4] = {};
  ring.run(share, load, [&](int64_t k, int64_t chunk, const ChunkLoads& codes, int slot) {
    uint4 (&x)[kTiles][4] = x_ring[slot % 2];
    float d[kTiles][4] = {};
#pragma unroll
    for (int s = 0; s < 8; ++s) {
      // Bytes 2s (A registers 0, 1) and 2s + 1 (registers 2, 3) of the low and high rows.
      const uint32_t low = word_of(codes.low, s / 2), high = word_of(codes.high, s / 2);
      uint32_t a[4];
      if (s % 2 == 0) {
        a[0] = lookup(table_offset<0>(low, lane_bytes));
        a[1] = lookup(table_offset<0>(high, lane_bytes));
        a[2] = lookup(table_offset<8>(low, lane_bytes));
        a[3] = lookup(table_offset<8>(high, lane_bytes));
      } else {
        a[0] = lookup(table_offset<16>(low, lane_bytes));
        a[1] = lookup(table_offset<16>(high, lane_bytes));
        a[2] = lookup(table_offset<24>(low, lane_bytes));
        a[3] = lookup(table_offset<24>(high, lane_bytes));
      }
#pragma unroll
      for (int n = 0; n < kTiles; ++n) {
        const uint4& xv = x[n][s / 2];
        mma_m16n8k16(d[n], a, s % 2 == 0 ? xv.x : xv.z, s % 2 == 0 ? xv.y : xv.w);
      }
    }
    if (k + 2 < share.count) load_x(chunk + 2 * share.stride, x);
    const float gain_low = __half2float(__ushort_as_half(codes.gain_low));
    const float gain_high = __half2float(__ushort_as_half(codes.gain_high));
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      acc[n][0] = fmaf(gain_low, d[n][0], acc[n][0]);
      acc[n][1] = fmaf(gain_low, d[n][1], acc[n][1]);
      acc[n][2] = fmaf(gain_high, d[n][2], acc[n][2]);
      acc[n][3] = fmaf(gain_high, d[n][3], acc[n][3]);
    }
  });
  store_tile_sums<kTiles>(acc, partial, warps_per_tile_log2, tiles, weight.rows, batch, y);
}

}  // namespace

bool hlwq_pairs_apply(const HlwqView& weight) {
  return power_of_two_block(weight.block, 128, 1024);
}

bool hlwq_pair_gemv_applies(const HlwqView& weight, int64_t batch) {
  return weight.bits == 4 && hlwq_pairs_apply(weight) && batch >= 1 && batch <= kMaxBatch && weight.rows >= 1;
}

void hlwq_pair_gemv(const HlwqView& weight, const uint32_t* pairs, int64_t batch, float* y, cudaStream_t stream) {
  // The table costs a CTA 256 cycles of shared-memory stores, about a quarter of the lookups of one
  // 4096-column tile; a CTA of several tiles (tensor_core_tile.cuh) pays it once for them.
  const TileSpread spread = spread_tiles((weight.rows + kTileRows - 1) / kTileRows);
  const int chunks_per_block_log2 = log2_of_block(weight.block) - 7;
  if (batch <= kMmaColumns) {
    hlwq_pair_gemv_kernel<1><<<spread.ctas, kThreads, 0, stream>>>(weight, pairs, static_cast<int>(batch), y,
                                                                   chunks_per_block_log2, spread.warps_per_tile_log2);
  } else {
    hlwq_pair_gemv_kernel<2><<<spread.ctas, kThreads, 0, stream>>>(weight, pairs, static_cast<int>(batch), y,
                                                                   chunks_per_block_log2, spread.warps_per_tile_log2);
  }
}

}  // namespace hlwq::cuda::kernels
