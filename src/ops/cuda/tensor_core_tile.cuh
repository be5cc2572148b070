// What the tensor-core decode products (GEMV version 4: hlwq_pair_gemv.cu for HLWQ Q4,
// nibble_pair_gemv.cu for 4-bit MLX and INT4) share: the mma instruction and its tile, how the warps
// of a grid are spread over 16-row tiles, the ring of loads a warp keeps in flight, and the sum of a
// tile's warps into y.
//
// Why a ring: at batch 1 a warp's work per chunk is a few dozen instructions, so with one chunk
// loaded ahead a warp waits a memory latency (about 1 us under load) per chunk and the product
// reaches a quarter of the read bandwidth. kAhead chunks in flight a warp (4 KB) and 16 warps an SM
// keep about 64 KB an SM in flight, more than bandwidth x latency (about 25 KB an SM on an H100).
//
// Why a spread: a 14336-row layer has 896 tiles, a 4096-row one 256. One CTA a tile leaves either a
// partial second wave (896 over the 792 CTAs of 4 warps that fit, costing as much as the first) or
// too few warps an SM to keep the bytes above in flight (256 tiles of 4 warps: 8 warps an SM). So 1,
// 2, 4 or 8 warps share a tile (splitting its chunks) and a CTA of 8 warps holds 8, 4, 2 or 1 tiles:
// the most warps a tile that still fits the grid in one wave of 2 CTAs an SM, or one warp a tile
// when nothing does (the vocabulary projection).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_buffer.h"

namespace hlwq::cuda::kernels::tensor_core {

inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kResidentCtasPerSm = 2;  // the kernels' __launch_bounds__ minimum: 128 registers
inline constexpr int kTileRows = 16;          // M of the mma
inline constexpr int kMmaColumns = 8;         // N of the mma: rows of x per n-tile
inline constexpr int kMaxBatch = 16;          // two n-tiles

// d += A (16 x 16, fp16, row-major fragment) * B (16 x 8, fp16, column-major fragment), fp32 sums.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The grid of a product: `ctas` CTAs, 2^warps_per_tile_log2 warps a tile (1, 2, 4 or 8).
struct TileSpread {
  int warps_per_tile_log2 = 0;
  unsigned ctas = 0;
};

// Host: the spread for `tiles` tiles on the current device (see the top of this file).
inline TileSpread spread_tiles(int64_t tiles) {
  int device = 0, multiprocessors = 0;
  check_cuda(cudaGetDevice(&device), "tensor-core GEMV: current device");
  check_cuda(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device),
             "tensor-core GEMV: multiprocessor count");
  const int64_t resident = static_cast<int64_t>(kResidentCtasPerSm) * multiprocessors;
  TileSpread spread;
  for (int log2 = 3; log2 >= 0; --log2) {
    const int64_t tiles_per_cta = kWarps >> log2;
    const int64_t ctas = (tiles + tiles_per_cta - 1) / tiles_per_cta;
    spread.warps_per_tile_log2 = log2;
    spread.ctas = static_cast<unsigned>(ctas);
    if (ctas <= resident) break;
  }
  if ((tiles + kWarps - 1) / kWarps > 0x7fffffff) {
    check_cuda(cudaErrorInvalidConfiguration, "tensor-core GEMV: too many rows");
  }
  return spread;
}

// Device: this warp's tile and its share of the tile's `chunks` (chunks first, first + stride, ...).
struct WarpShare {
  int64_t tile = 0;
  int64_t first = 0, stride = 1, count = 0;  // count 0: past the last tile
};

__device__ __forceinline__ WarpShare warp_share(int warps_per_tile_log2, int64_t tiles, int64_t chunks) {
  const int warp = threadIdx.x >> 5;
  const int in_tile = warp & ((1 << warps_per_tile_log2) - 1);
  WarpShare share;
  share.tile = static_cast<int64_t>(blockIdx.x) * (kWarps >> warps_per_tile_log2) + (warp >> warps_per_tile_log2);
  share.first = in_tile;
  share.stride = int64_t{1} << warps_per_tile_log2;
  share.count = share.tile < tiles && in_tile < chunks ? (chunks - in_tile + share.stride - 1) / share.stride : 0;
  if (share.tile >= tiles) share.tile = tiles - 1;  // a valid row for address arithmetic; nothing is loaded
  return share;
}

// kAhead loads in registers: the loads of chunk k + kAhead go out as soon as chunk k is used, so
// kAhead - 1 to kAhead chunks are in flight while one is multiplied. Slots are indexed by unrolled
// constants only, so they stay in registers.
//
// A load must land in its slot untouched: no conversion, select or OR of the loaded value where it
// is loaded. An instruction that reads a loaded register waits for the load, and a warp issues in
// order, so one such instruction after each load (an fp16 gain widened to float, say) makes the
// warp wait a whole memory latency per chunk, and the ring holds one chunk in flight, not kAhead.
// Loaded values are widened where they are used.
template <int kAhead, class Loads>
struct LoadRing {
  Loads slot[kAhead];

  // load(chunk, Loads&) for the share's first kAhead chunks; call before work that hides their latency.
  template <class Load>
  __device__ __forceinline__ void start(const WarpShare& share, Load&& load) {
#pragma unroll
    for (int i = 0; i < kAhead; ++i) {
      if (i < share.count) load(share.first + i * share.stride, slot[i]);
    }
  }

  // use(k, chunk, const Loads&, i) for every chunk of the share, in order: k is the chunk's place in
  // the share and i = k % kAhead its slot, a constant after unrolling (so a kernel can keep a
  // smaller ring of its own, indexed by i % 2 when kAhead is even).
  template <class Load, class Use>
  __device__ __forceinline__ void run(const WarpShare& share, Load&& load, Use&& use) {
    for (int64_t base = 0; base < share.count; base += kAhead) {
#pragma unroll
      for (int i = 0; i < kAhead; ++i) {
        const int64_t k = base + i;
        if (k < share.count) {
          use(k, share.first + k * share.stride, slot[i], i);
          if (k + kAhead < share.count) load(share.first + (k + kAhead) * share.stride, slot[i]);
        }
      }
    }
  }
};

// The CTA's shared sums: a warp's 16 x (8 kTiles) block of fp32 sums.
template <int kTiles>
using TilePartials = float[kWarps][kTileRows][kTiles * kMmaColumns];

// y[b, row] for the tile's rows from every thread's mma accumulators acc[n] (per n-tile n: (row
// group, x row 8 n + 2 quad), (group, 8 n + 2 quad + 1), (group + 8, ...) twice), summed over the
// warps that share the tile. Every thread of the CTA must call it (it synchronizes the CTA).
template <int kTiles>
__device__ __forceinline__ void store_tile_sums(const float (&acc)[kTiles][4], TilePartials<kTiles>& partial,
                                                int warps_per_tile_log2, int64_t tiles, int64_t rows, int batch,
                                                float* y) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = lane >> 2, quad = lane & 3;
  const int64_t first_tile = static_cast<int64_t>(blockIdx.x) * (kWarps >> warps_per_tile_log2);
  auto store = [&](int64_t tile, int r, int b, float value) {
    const int64_t row = tile * kTileRows + r;
    if (b < batch && tile < tiles && row < rows) y[b * rows + row] = value;
  };
  if (warps_per_tile_log2 == 0) {  // the warp holds its tile's whole sums
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      const int b = kMmaColumns * n + 2 * quad;
      store(first_tile + warp, group, b, acc[n][0]);
      store(first_tile + warp, group, b + 1, acc[n][1]);
      store(first_tile + warp, group + 8, b, acc[n][2]);
      store(first_tile + warp, group + 8, b + 1, acc[n][3]);
    }
    return;
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
  const int warps_per_tile = 1 << warps_per_tile_log2;
  for (int i = threadIdx.x; i < kWarps * kTileRows * kColumns / warps_per_tile; i += kThreads) {
    const int local = i / (kTileRows * kColumns), r = (i / kColumns) % kTileRows, b = i % kColumns;
    float total = 0;
    for (int w = 0; w < warps_per_tile; ++w) total += partial[local * warps_per_tile + w][r][b];
    store(first_tile + local, r, b, total);
  }
}

}  // namespace hlwq::cuda::kernels::tensor_core
