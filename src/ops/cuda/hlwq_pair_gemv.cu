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

namespace hlwq::cuda::kernels {
namespace {

constexpr int kPairWarps = 4;
constexpr int kPairThreads = kPairWarps * 32;
constexpr int kTileRows = 16;      // M of the mma
constexpr int kMmaColumns = 8;     // N of the mma: rows of x per n-tile
constexpr int kPairMaxBatch = 16;  // two n-tiles
constexpr int kChunkBytes = 64;    // a row's bytes one warp covers in 8 mma steps
constexpr int kTableEntries = 256;
constexpr int kTableCopies = 32;

__device__ __forceinline__ uint32_t half2_bits(float low, float high) {
  const __half2 pair = __floats2half2_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// d += A (16 x 16, fp16, row-major fragment) * B (16 x 8, fp16, column-major fragment), fp32 sums.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offset in the table of this lane's copy of the entry for byte kShift / 8 of word: the byte
// times 128 (32 copies of 4 bytes), OR the lane's 4 lane bytes (bits 2..6, disjoint from the byte's).
template <int kShift>
__device__ __forceinline__ uint32_t table_offset(uint32_t word, uint32_t lane_bytes) {
  const uint32_t shifted = kShift >= 7 ? word >> (kShift - 7) : word << (7 - kShift);
  return (shifted & (0xFFu << 7)) | lane_bytes;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// What one thread loads for one chunk: 16 code bytes of its low row (group) and of its high row
// (group + 8), its 16 pair words of x row group (+ 8 n for n-tile n; zeros past the batch), the two
// rows' block gains.
template <int kTiles>
struct ChunkLoads {
  uint4 low, high;
  uint4 x[kTiles][4];
  float gain_low, gain_high;
};

// kTiles n-tiles of 8 rows of x: 1 for batches 1..8, 2 for 9..16 (each weight fragment feeds two mma).
template <int kTiles>
__global__ void __launch_bounds__(kPairThreads) hlwq_pair_gemv_kernel(HlwqView weight, const uint32_t* pairs,
                                                                      int batch, float* y,
                                                                      int chunks_per_block_log2) {
  __shared__ __align__(16) uint32_t table[kTableEntries * kTableCopies];
  __shared__ float partial[kPairWarps][kTileRows][kTiles * kMmaColumns];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = lane >> 2, quad = lane & 3;
  const uint32_t lane_bytes = static_cast<uint32_t>(lane) * 4;
  const int64_t chunks = weight.code_bytes / kChunkBytes;
  const int64_t pair_words = weight.padded_columns / 2;  // per row of x
  bool has_x[kTiles];
  const uint32_t* x_pairs[kTiles];
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    has_x[n] = group + kMmaColumns * n < batch;
    x_pairs[n] = pairs + (has_x[n] ? group + kMmaColumns * n : 0) * pair_words + quad * 16;
  }

  auto load_chunk = [&](int64_t tile, int64_t chunk, ChunkLoads<kTiles>& into) {
    const int64_t row_low = min(tile * kTileRows + group, weight.rows - 1);
    const int64_t row_high = min(tile * kTileRows + group + 8, weight.rows - 1);
    const int64_t byte = chunk * kChunkBytes + quad * 16;
    into.low = __ldg(reinterpret_cast<const uint4*>(weight.codes + row_low * weight.code_bytes + byte));
    into.high = __ldg(reinterpret_cast<const uint4*>(weight.codes + row_high * weight.code_bytes + byte));
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        into.x[n][i] = has_x[n] ? __ldg(reinterpret_cast<const uint4*>(x_pairs[n] + chunk * kChunkBytes) + i)
                                : make_uint4(0, 0, 0, 0);
      }
    }
    const int64_t block_index = chunk >> chunks_per_block_log2;
    into.gain_low = __half2float(__ushort_as_half(__ldg(weight.gains + row_low * weight.blocks + block_index)));
    into.gain_high = __half2float(__ushort_as_half(__ldg(weight.gains + row_high * weight.blocks + block_index)));
  };

  // The first chunk's loads go out before the table is built, so its latency hides theirs.
  const int64_t tile = blockIdx.x;
  ChunkLoads<kTiles> current;
  if (warp < chunks) load_chunk(tile, warp, current);
  for (int entry = threadIdx.x; entry < kTableEntries; entry += kPairThreads) {
    const uint32_t value = half2_bits(__ldg(weight.centroids + (entry & 15)), __ldg(weight.centroids + (entry >> 4)));
    uint4* copies = reinterpret_cast<uint4*>(table + entry * kTableCopies);
#pragma unroll
    for (int i = 0; i < kTableCopies / 4; ++i) copies[i] = make_uint4(value, value, value, value);
  }
  __syncthreads();
  const char* table_bytes = reinterpret_cast<const char*>(table);
  auto lookup = [&](uint32_t offset) { return *reinterpret_cast<const uint32_t*>(table_bytes + offset); };

  // Per n-tile n: (row group, x row 8n + 2 quad), (group, 8n + 2 quad + 1), (group + 8, ...) x 2.
  float acc[kTiles][4] = {};
  for (int64_t chunk = warp; chunk < chunks; chunk += kPairWarps) {
    // The warp's next chunk loads while this one multiplies.
    ChunkLoads<kTiles> next;
    if (chunk + kPairWarps < chunks) load_chunk(tile, chunk + kPairWarps, next);
    float d[kTiles][4] = {};
#pragma unroll
    for (int s = 0; s < 8; ++s) {
      // Bytes 2s (A registers 0, 1) and 2s + 1 (registers 2, 3) of the low and high rows.
      const uint32_t low = word_of(current.low, s / 2), high = word_of(current.high, s / 2);
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
        const uint4& xv = current.x[n][s / 2];
        mma_m16n8k16(d[n], a, s % 2 == 0 ? xv.x : xv.z, s % 2 == 0 ? xv.y : xv.w);
      }
    }
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      acc[n][0] = fmaf(current.gain_low, d[n][0], acc[n][0]);
      acc[n][1] = fmaf(current.gain_low, d[n][1], acc[n][1]);
      acc[n][2] = fmaf(current.gain_high, d[n][2], acc[n][2]);
      acc[n][3] = fmaf(current.gain_high, d[n][3], acc[n][3]);
    }
    current = next;
  }
  // The warps' sums of the tile, then one thread per (row, x row) over the warps.
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    partial[warp][group][kMmaColumns * n + 2 * quad] = acc[n][0];
    partial[warp][group][kMmaColumns * n + 2 * quad + 1] = acc[n][1];
    partial[warp][group + 8][kMmaColumns * n + 2 * quad] = acc[n][2];
    partial[warp][group + 8][kMmaColumns * n + 2 * quad + 1] = acc[n][3];
  }
  __syncthreads();
  constexpr int kColumns = kTiles * kMmaColumns;
  for (int i = threadIdx.x; i < kTileRows * kColumns; i += kPairThreads) {
    const int r = i / kColumns, b = i % kColumns;
    const int64_t row = tile * kTileRows + r;
    if (b < batch && row < weight.rows) {
      float total = 0;
#pragma unroll
      for (int w = 0; w < kPairWarps; ++w) total += partial[w][r][b];
      y[b * weight.rows + row] = total;
    }
  }
}

int log2_of(int value) {
  int log = 0;
  while ((1 << log) < value) ++log;
  return log;
}

}  // namespace

bool hlwq_pairs_apply(const HlwqView& weight) {
  return weight.block >= 128 && weight.block <= 1024 && (weight.block & (weight.block - 1)) == 0;
}

bool hlwq_pair_gemv_applies(const HlwqView& weight, int64_t batch) {
  return weight.bits == 4 && hlwq_pairs_apply(weight) && batch >= 1 && batch <= kPairMaxBatch && weight.rows >= 1;
}

void hlwq_pair_gemv(const HlwqView& weight, const uint32_t* pairs, int64_t batch, float* y, cudaStream_t stream) {
  // One CTA a 16-row tile: the table costs a CTA 256 cycles of shared-memory stores, about a quarter
  // of its lookups on a 4096-column tile, and is cheaper than the imbalance of a persistent grid
  // (896 tiles of a 14336-row layer over 396 resident CTAs would take 3 rounds where 2.3 suffice).
  const int64_t tiles = (weight.rows + kTileRows - 1) / kTileRows;
  if (tiles > 0x7fffffff) check_cuda(cudaErrorInvalidConfiguration, "HLWQ GEMV (tensor-core pairs): too many rows");
  const int chunks_per_block_log2 = log2_of(weight.block) - 7;
  if (batch <= kMmaColumns) {
    hlwq_pair_gemv_kernel<1><<<static_cast<unsigned>(tiles), kPairThreads, 0, stream>>>(
        weight, pairs, static_cast<int>(batch), y, chunks_per_block_log2);
  } else {
    hlwq_pair_gemv_kernel<2><<<static_cast<unsigned>(tiles), kPairThreads, 0, stream>>>(
        weight, pairs, static_cast<int>(batch), y, chunks_per_block_log2);
  }
}

}  // namespace hlwq::cuda::kernels
