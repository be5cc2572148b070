// HLWQ decode product (batch 1..16) straight from the packed bit planes, and the rotation of the
// activations it runs on.
//
// y[b, r] = sum_blocks gain(r, blk) * sum_i c[q(r, i)] * x'[b, i], with x' = H(s * x_block) / d per
// block (unnormalized H, so 1/d is exact): the orthonormal transform is its own inverse, so rotating
// x once per call replaces the inverse transform of every weight row. No weight is formed anywhere.
//
// Cost model (Q4, d = 128, batch 1): per 16-byte unit of codes, 32 codes -> per code one shift and
// one AND giving the code times 4, one codebook read from shared memory (conflict-free: 16 entries
// in 16 banks) and one FMA; the gain multiplies the unit's sum once; 8 float4 activation loads from
// L1 per unit, shared by the CTA's 4 rows. Shared memory then serves 32 lookups per SM clock (one
// warp instruction) plus the activation loads: about 44 pipe cycles per 512 bytes of codes, ~11.6 B
// per SM clock, against the ~12 B/clk H100's HBM delivers per SM: memory-bound only by a small
// margin (the codebook reads are the limit). Wider codes add per extra plane one load of the same
// size and a shift, mask and OR per code. Measured on an H100 (docs/KERNELS.md): 0.53 of the read
// bandwidth on 128256x4096, 0.18-0.35 on the 4096-14336-row layers: the per-CTA latency chain
// (codebook load and barrier, one unit of loads, reduction), not this instruction count, limits it.
#include "ops/cuda/gemv_common.cuh"
#include "ops/cuda/hlwq_planes.cuh"

namespace hlwq::cuda::kernels {
namespace {

__global__ void hlwq_rotate_kernel(HlwqView weight, const float* x, float* rotated) {
  extern __shared__ float values[];
  const int i = threadIdx.x;
  const int64_t column = static_cast<int64_t>(blockIdx.x) * weight.block + i;
  const int64_t b = blockIdx.y;
  const int64_t padded = weight.padded_columns;
  float v = column < weight.columns ? x[b * weight.columns + column] : 0.0f;
  if (!weight.rotate) {
    rotated[b * padded + column] = v * weight.identity_scale;
    return;
  }
  if (weight.signs != nullptr) v *= weight.signs[column];
  values[i] = v;
  __syncthreads();
  // Sylvester order, strides 1, 2, 4, ...: lower = x + y, upper = x - y (the CPU's order and
  // roundings). Each thread computes its own output, so no thread idles.
  for (int stride = 1; stride < weight.block; stride <<= 1) {
    const float partner = values[i ^ stride];
    v = (i & stride) ? partner - v : v + partner;
    __syncthreads();
    values[i] = v;
    __syncthreads();
  }
  rotated[b * padded + column] = v * (1.0f / static_cast<float>(weight.block));
}

// Bits [shift, shift + kWidth) of word, times 4.
template <int kWidth>
__device__ __forceinline__ uint32_t field_times_four(uint32_t word, int shift) {
  constexpr uint32_t kMask = ((1u << kWidth) - 1) << 2;
  return shift >= 2 ? (word >> (shift - 2)) & kMask : (word << (2 - shift)) & kMask;
}

template <int kBits, int kUnit, int kTile>
__global__ void __launch_bounds__(kGemvThreads) hlwq_gemv_kernel(HlwqView weight, const float* rotated, int batch,
                                                                 float* y, int block_log2) {
  constexpr PlaneGeometry kPlanes = plane_geometry(kBits);
  constexpr int kFields0 = 8 / kPlanes.width[0];  // runs of codes per unit of the first plane
  constexpr int kWords = kUnit / 4;
  constexpr int kRows = gemv_rows_per_cta(kTile);
  __shared__ float codebook[1 << kBits];
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) codebook[i] = weight.centroids[i];
  __syncthreads();

  // Plane sizes as shifts: P_p = block * width / 8.
  int plane_log2[3] = {0, 0, 0};
  int64_t plane_start[3] = {0, 0, 0};
#pragma unroll
  for (int p = 0; p < kPlanes.count; ++p) {
    plane_log2[p] = block_log2 + (kPlanes.width[p] == 4 ? 2 : kPlanes.width[p] == 2 ? 1 : 0) - 3;
    plane_start[p] = p == 0 ? 0 : plane_start[p - 1] + (int64_t{1} << plane_log2[p - 1]);
  }
  const int64_t block_bytes = static_cast<int64_t>(weight.block) * kBits / 8;
  const int units_per_block_log2 = plane_log2[0] - (kUnit == 16 ? 4 : kUnit == 8 ? 3 : 2);
  const int64_t units = weight.blocks << units_per_block_log2;
  const int64_t padded = weight.padded_columns;

  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint8_t* row_codes[kRows];
  const uint16_t* row_gains[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = min(first_row + r, weight.rows - 1);
    row_codes[r] = weight.codes + row * weight.code_bytes;
    row_gains[r] = weight.gains + row * weight.blocks;
  }

  // Tiles up to 4 x rows sum a unit without its gain and scale once per unit (registers allow
  // it); the 16-row tile scales each codebook value (one multiply over up to 16 FMAs).
  constexpr bool kFactorGain = kTile <= 4;
  const char* codebook_bytes = reinterpret_cast<const char*>(codebook);
  float acc[kRows][kTile] = {};
  for (int64_t unit = threadIdx.x; unit < units; unit += kGemvThreads) {
    const int64_t block_index = unit >> units_per_block_log2;
    const int j = static_cast<int>(unit & ((int64_t{1} << units_per_block_log2) - 1)) * kUnit;
    uint32_t words[kRows][kPlanes.count][kWords];
    float gain[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* block_codes = row_codes[r] + block_index * block_bytes;
#pragma unroll
      for (int p = 0; p < kPlanes.count; ++p) {
        const int64_t offset = plane_start[p] + (p == 0 ? j : (j & ((1 << plane_log2[p]) - 1)));
        load_words<kUnit>(block_codes + offset, words[r][p]);
      }
      gain[r] = __half2float(__ushort_as_half(__ldg(row_gains[r] + block_index)));
    }
    const float* x_block = rotated + block_index * weight.block;
    float unit_acc[kRows][kTile] = {};
#pragma unroll
    for (int k = 0; k < kFields0; ++k) {
      // Field of each narrower plane holding the codes j + k P0 ..: j / P_p + k P0 / P_p.
      int extra_shift[3] = {0, 0, 0};
#pragma unroll
      for (int p = 1; p < kPlanes.count; ++p) {
        extra_shift[p] = ((j >> plane_log2[p]) + (k << (plane_log2[0] - plane_log2[p]))) * kPlanes.width[p];
      }
      const int64_t run_start = (static_cast<int64_t>(k) << plane_log2[0]) + j;
#pragma unroll
      for (int c = 0; c < kWords; ++c) {
        float4 xv[kTile];
#pragma unroll
        for (int b = 0; b < kTile; ++b) {
          xv[b] = (kTile == 1 || b < batch) ? load_float4(x_block + b * padded + run_start + 4 * c)
                                            : make_float4(0, 0, 0, 0);
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
#pragma unroll
          for (int t = 0; t < 4; ++t) {
            // The code times 4 (its byte offset in the codebook) straight from the word: the first
            // plane's shift is known at compile time, so this is one shift and one AND.
            uint32_t offset = field_times_four<kPlanes.width[0]>(words[r][0][c], 8 * t + kPlanes.width[0] * k);
#pragma unroll
            for (int p = 1; p < kPlanes.count; ++p) {
              const uint32_t mask = (1u << kPlanes.width[p]) - 1;
              offset |= ((words[r][p][c] >> (8 * t + extra_shift[p])) & mask) << (kPlanes.first_bit[p] + 2);
            }
            const float centroid = *reinterpret_cast<const float*>(codebook_bytes + offset);
            const float value = kFactorGain ? centroid : centroid * gain[r];
#pragma unroll
            for (int b = 0; b < kTile; ++b) {
              const float xt = t == 0 ? xv[b].x : t == 1 ? xv[b].y : t == 2 ? xv[b].z : xv[b].w;
              if constexpr (kFactorGain) {
                unit_acc[r][b] = fmaf(value, xt, unit_acc[r][b]);
              } else {
                acc[r][b] = fmaf(value, xt, acc[r][b]);
              }
            }
          }
        }
      }
    }
    if constexpr (kFactorGain) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int b = 0; b < kTile; ++b) acc[r][b] = fmaf(gain[r], unit_acc[r][b], acc[r][b]);
      }
    }
  }
  reduce_and_store<kRows, kTile>(acc, first_row, weight.rows, batch, y);
}

int log2_of(int value) {
  int log = 0;
  while ((1 << log) < value) ++log;
  return log;
}

// Whether some block 32..1024 gives this width that unit (so only reachable kernels are compiled).
constexpr bool unit_reachable(int bits, int unit) {
  for (int block = 32; block <= 1024; block *= 2) {
    if (unit_bytes(bits, block) == unit) return true;
  }
  return false;
}

template <int kBits, int kUnit>
void launch_unit(const HlwqView& weight, const float* rotated, int64_t batch, float* y, cudaStream_t stream) {
  if constexpr (unit_reachable(kBits, kUnit)) {
    with_batch_tile(batch, [&](auto tile) {
      constexpr int kTile = decltype(tile)::value;
      hlwq_gemv_kernel<kBits, kUnit, kTile><<<gemv_grid(weight.rows, kTile), kGemvThreads, 0, stream>>>(
          weight, rotated, static_cast<int>(batch), y, log2_of(weight.block));
    });
  }
}

template <int kBits>
void launch_bits(const HlwqView& weight, const float* rotated, int64_t batch, float* y, cudaStream_t stream) {
  switch (unit_bytes(kBits, weight.block)) {
    case 16: launch_unit<kBits, 16>(weight, rotated, batch, y, stream); break;
    case 8: launch_unit<kBits, 8>(weight, rotated, batch, y, stream); break;
    case 4: launch_unit<kBits, 4>(weight, rotated, batch, y, stream); break;
    default: break;
  }
}

}  // namespace

void hlwq_rotate_activations(const HlwqView& weight, const float* x, int64_t batch, float* rotated,
                             cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(weight.blocks), static_cast<unsigned>(batch));
  hlwq_rotate_kernel<<<grid, weight.block, weight.block * sizeof(float), stream>>>(weight, x, rotated);
  check_launch("HLWQ activation rotation");
}

bool hlwq_gemv_applies(const HlwqView& weight, int64_t batch) {
  const bool block_ok = weight.block >= 32 && weight.block <= 1024 && (weight.block & (weight.block - 1)) == 0;
  return weight.bits >= 2 && weight.bits <= 8 && block_ok && batch >= 1 && batch <= kMaxGemvBatch;
}

void hlwq_gemv(const HlwqView& weight, const float* rotated, int64_t batch, float* y, cudaStream_t stream) {
  switch (weight.bits) {
    case 2: launch_bits<2>(weight, rotated, batch, y, stream); break;
    case 3: launch_bits<3>(weight, rotated, batch, y, stream); break;
    case 4: launch_bits<4>(weight, rotated, batch, y, stream); break;
    case 5: launch_bits<5>(weight, rotated, batch, y, stream); break;
    case 6: launch_bits<6>(weight, rotated, batch, y, stream); break;
    case 7: launch_bits<7>(weight, rotated, batch, y, stream); break;
    case 8: launch_bits<8>(weight, rotated, batch, y, stream); break;
    default: break;
  }
  check_launch("HLWQ GEMV");
}

}  // namespace hlwq::cuda::kernels
