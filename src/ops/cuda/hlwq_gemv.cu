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
#include "ops/cuda/hlwq_pair_gemv.cuh"
#include "ops/cuda/hlwq_planes.cuh"

namespace hlwq::cuda::kernels {
namespace {

__global__ void hlwq_rotate_kernel(HlwqView weight, const float* x, float* rotated, __half* pairs) {
  extern __shared__ float values[];
  const int i = threadIdx.x;
  const int64_t column = static_cast<int64_t>(blockIdx.x) * weight.block + i;
  const int64_t b = blockIdx.y;
  const int64_t padded = weight.padded_columns;
  float v = column < weight.columns ? x[b * weight.columns + column] : 0.0f;
  if (!weight.rotate) {
    v *= weight.identity_scale;
  } else {
    if (weight.signs != nullptr) v *= weight.signs[column];
    v = sylvester_hadamard(v, values, i, weight.block) * (1.0f / static_cast<float>(weight.block));
  }
  rotated[b * padded + column] = v;
  if (pairs != nullptr) {
    // Version 4's layout: word j of the block's pairs is half2(x'[j], x'[j + block / 2]).
    const int half_block = weight.block / 2;
    pairs[b * padded + static_cast<int64_t>(blockIdx.x) * weight.block + 2 * (i % half_block) + i / half_block] =
        __float2half_rn(v);
  }
}

// Bits [shift, shift + kWidth) of word, times 4.
template <int kWidth>
__device__ __forceinline__ uint32_t field_times_four(uint32_t word, int shift) {
  constexpr uint32_t kMask = ((1u << kWidth) - 1) << 2;
  return shift >= 2 ? (word >> (shift - 2)) & kMask : (word << (2 - shift)) & kMask;
}

// Where a thread's unit of codes sits: byte offsets of each plane in a block, as shifts.
template <int kBits>
struct BlockPlanes {
  int log2_bytes[3] = {0, 0, 0};  // P_p = block * width_p / 8 = 2^log2_bytes[p]
  int64_t start[3] = {0, 0, 0};   // offset of plane p in the block
  __device__ explicit BlockPlanes(int block_log2) {
    constexpr PlaneGeometry kPlanes = plane_geometry(kBits);
#pragma unroll
    for (int p = 0; p < kPlanes.count; ++p) {
      log2_bytes[p] = block_log2 + (kPlanes.width[p] == 4 ? 2 : kPlanes.width[p] == 2 ? 1 : 0) - 3;
      start[p] = p == 0 ? 0 : start[p - 1] + (int64_t{1} << log2_bytes[p - 1]);
    }
  }
};

// The codes of one unit (kUnit bytes of the first plane at byte j of a block, and the matching
// bytes of the other planes) of each of kRows rows, and their block gains.
template <int kBits, int kUnit, int kRows>
struct UnitCodes {
  static constexpr int kPlaneCount = plane_geometry(kBits).count;
  uint32_t words[kRows][kPlaneCount][kUnit / 4];
  float gain[kRows];
};

template <int kBits, int kUnit, int kRows>
__device__ __forceinline__ void load_unit(const uint8_t* const (&row_codes)[kRows], const uint16_t* const (&row_gains)[kRows],
                                          const BlockPlanes<kBits>& planes, int64_t block_bytes, int64_t block_index,
                                          int j, UnitCodes<kBits, kUnit, kRows>& into) {
  constexpr PlaneGeometry kPlanes = plane_geometry(kBits);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const uint8_t* block_codes = row_codes[r] + block_index * block_bytes;
#pragma unroll
    for (int p = 0; p < kPlanes.count; ++p) {
      const int64_t offset = planes.start[p] + (p == 0 ? j : (j & ((1 << planes.log2_bytes[p]) - 1)));
      load_words<kUnit>(block_codes + offset, into.words[r][p]);
    }
    into.gain[r] = __half2float(__ushort_as_half(__ldg(row_gains[r] + block_index)));
  }
}

// acc[r][b] += gain(r) * sum over the unit's codes of c[q] * x'[b], where activations(k, c, b) gives
// the rotated activations of the codes j + k P0 + 4c .. + 3 of x row b as a float4 (k and c are
// compile-time after unrolling, so a register array can serve them as well as memory).
template <int kBits, int kUnit, int kRows, int kTile, class Activations>
__device__ __forceinline__ void accumulate_unit(const UnitCodes<kBits, kUnit, kRows>& unit, const BlockPlanes<kBits>& planes,
                                                int j, const char* codebook_bytes, float (&acc)[kRows][kTile],
                                                Activations&& activations) {
  constexpr PlaneGeometry kPlanes = plane_geometry(kBits);
  constexpr int kFields0 = 8 / kPlanes.width[0];  // runs of codes per unit of the first plane
  constexpr int kWords = kUnit / 4;
  // Tiles up to 4 x rows sum a unit without its gain and scale once per unit (registers allow
  // it); the 16-row tile scales each codebook value (one multiply over up to 16 FMAs).
  constexpr bool kFactorGain = kTile <= 4;
  float unit_acc[kRows][kTile] = {};
#pragma unroll
  for (int k = 0; k < kFields0; ++k) {
    // Field of each narrower plane holding the codes j + k P0 ..: j / P_p + k P0 / P_p.
    int extra_shift[3] = {0, 0, 0};
#pragma unroll
    for (int p = 1; p < kPlanes.count; ++p) {
      extra_shift[p] =
          ((j >> planes.log2_bytes[p]) + (k << (planes.log2_bytes[0] - planes.log2_bytes[p]))) * kPlanes.width[p];
    }
#pragma unroll
    for (int c = 0; c < kWords; ++c) {
      float4 xv[kTile];
#pragma unroll
      for (int b = 0; b < kTile; ++b) xv[b] = activations(k, c, b);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          // The code times 4 (its byte offset in the codebook) straight from the word: the first
          // plane's shift is known at compile time, so this is one shift and one AND.
          uint32_t offset = field_times_four<kPlanes.width[0]>(unit.words[r][0][c], 8 * t + kPlanes.width[0] * k);
#pragma unroll
          for (int p = 1; p < kPlanes.count; ++p) {
            const uint32_t mask = (1u << kPlanes.width[p]) - 1;
            offset |= ((unit.words[r][p][c] >> (8 * t + extra_shift[p])) & mask) << (kPlanes.first_bit[p] + 2);
          }
          const float centroid = *reinterpret_cast<const float*>(codebook_bytes + offset);
          const float value = kFactorGain ? centroid : centroid * unit.gain[r];
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
      for (int b = 0; b < kTile; ++b) acc[r][b] = fmaf(unit.gain[r], unit_acc[r][b], acc[r][b]);
    }
  }
}

// The activations of a unit read from memory: x_block is its block's slice of x row 0, rows of x
// `padded` apart; rows at or past `batch` read as zeros.
template <int kTile, int kBits>
__device__ __forceinline__ auto activations_in_memory(const float* x_block, int64_t padded, int batch,
                                                      const BlockPlanes<kBits>& planes, int j) {
  return [=, &planes](int k, int c, int b) {
    const int64_t run_start = (static_cast<int64_t>(k) << planes.log2_bytes[0]) + j;
    return (kTile == 1 || b < batch) ? load_float4(x_block + b * padded + run_start + 4 * c) : make_float4(0, 0, 0, 0);
  };
}

// The CTA's rows (the last CTA repeats the last row; its extra sums are not stored).
template <int kRows>
__device__ __forceinline__ void cta_rows(const HlwqView& weight, int64_t first_row, const uint8_t* (&row_codes)[kRows],
                                         const uint16_t* (&row_gains)[kRows]) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = min(first_row + r, weight.rows - 1);
    row_codes[r] = weight.codes + row * weight.code_bytes;
    row_gains[r] = weight.gains + row * weight.blocks;
  }
}

// Version 1: a thread takes the widest unit every plane allows (16 bytes of the first plane for
// blocks >= 128 at 4 bits), loads it, then decodes it. Consecutive threads take consecutive units,
// so a warp's float4 activation loads of one field are 64 bytes apart per thread: each touches 16
// cache lines where 4 would do, and the L1 wavefronts, not HBM, bound it (docs/KERNELS.md).
template <int kBits, int kUnit, int kTile>
__global__ void __launch_bounds__(kGemvThreads) hlwq_gemv_kernel(HlwqView weight, const float* rotated, int batch,
                                                                 float* y, int block_log2) {
  constexpr int kRows = gemv_rows_per_cta(kTile);
  __shared__ float codebook[1 << kBits];
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) codebook[i] = weight.centroids[i];
  __syncthreads();

  const BlockPlanes<kBits> planes(block_log2);
  const int64_t block_bytes = static_cast<int64_t>(weight.block) * kBits / 8;
  const int units_per_block_log2 = planes.log2_bytes[0] - (kUnit == 16 ? 4 : kUnit == 8 ? 3 : 2);
  const int64_t units = weight.blocks << units_per_block_log2;
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint8_t* row_codes[kRows];
  const uint16_t* row_gains[kRows];
  cta_rows<kRows>(weight, first_row, row_codes, row_gains);

  const char* codebook_bytes = reinterpret_cast<const char*>(codebook);
  float acc[kRows][kTile] = {};
  for (int64_t unit = threadIdx.x; unit < units; unit += kGemvThreads) {
    const int64_t block_index = unit >> units_per_block_log2;
    const int j = static_cast<int>(unit & ((int64_t{1} << units_per_block_log2) - 1)) * kUnit;
    UnitCodes<kBits, kUnit, kRows> codes;
    load_unit<kBits, kUnit, kRows>(row_codes, row_gains, planes, block_bytes, block_index, j, codes);
    accumulate_unit<kBits, kUnit, kRows, kTile>(
        codes, planes, j, codebook_bytes, acc,
        activations_in_memory<kTile>(rotated + block_index * weight.block, weight.padded_columns, batch, planes, j));
  }
  reduce_and_store<kRows, kTile>(acc, first_row, weight.rows, batch, y);
}

// Version 2: a thread's unit is one 4-byte word of the first plane, so the 32 threads of a warp
// read 128 consecutive code bytes and their float4 activation loads cover consecutive 16-byte
// pieces (4 cache lines a load). Each thread keeps kGroup units of every row in flight: the next
// group's loads are issued before the current group is decoded, and the first group's before the
// codebook is staged, so the barrier and the codebook's load overlap the codes' latency.
inline constexpr int kCoalescedGroup = 4;

template <int kBits, int kTile>
__global__ void __launch_bounds__(kGemvThreads) hlwq_gemv_coalesced_kernel(HlwqView weight, const float* rotated,
                                                                           int batch, float* y, int block_log2) {
  constexpr int kRows = gemv_rows_per_cta(kTile);
  constexpr int kUnit = 4;
  constexpr int kGroup = kCoalescedGroup;
  const BlockPlanes<kBits> planes(block_log2);
  const int64_t block_bytes = static_cast<int64_t>(weight.block) * kBits / 8;
  const int units_per_block_log2 = planes.log2_bytes[0] - 2;
  const int64_t units = weight.blocks << units_per_block_log2;
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint8_t* row_codes[kRows];
  const uint16_t* row_gains[kRows];
  cta_rows<kRows>(weight, first_row, row_codes, row_gains);

  using Codes = UnitCodes<kBits, kUnit, kRows>;
  auto load_group = [&](int64_t base, Codes (&group)[kGroup]) {
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      const int64_t unit = base + int64_t{u} * kGemvThreads;
      if (unit < units) {
        const int j = static_cast<int>(unit & ((int64_t{1} << units_per_block_log2) - 1)) * kUnit;
        load_unit<kBits, kUnit, kRows>(row_codes, row_gains, planes, block_bytes, unit >> units_per_block_log2, j,
                                       group[u]);
      }
    }
  };
  constexpr int64_t kStep = int64_t{kGemvThreads} * kGroup;
  int64_t base = threadIdx.x;
  Codes current[kGroup];
  load_group(base, current);

  __shared__ float codebook[1 << kBits];
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) codebook[i] = weight.centroids[i];
  __syncthreads();
  const char* codebook_bytes = reinterpret_cast<const char*>(codebook);

  float acc[kRows][kTile] = {};
  while (base < units) {
    Codes next[kGroup];
    if (base + kStep < units) load_group(base + kStep, next);
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      const int64_t unit = base + int64_t{u} * kGemvThreads;
      if (unit < units) {
        const int64_t block_index = unit >> units_per_block_log2;
        const int j = static_cast<int>(unit & ((int64_t{1} << units_per_block_log2) - 1)) * kUnit;
        accumulate_unit<kBits, kUnit, kRows, kTile>(
            current[u], planes, j, codebook_bytes, acc,
            activations_in_memory<kTile>(rotated + block_index * weight.block, weight.padded_columns, batch, planes, j));
      }
    }
#pragma unroll
    for (int u = 0; u < kGroup; ++u) current[u] = next[u];
    base += kStep;
  }
  reduce_and_store<kRows, kTile>(acc, first_row, weight.rows, batch, y);
}

// Rows per group: 4 where two groups of code words (the one decoded and the one loading) and the
// unit's activations fit about 96 registers, else 2 (Q3 and Q7 at 16-byte units, which spilled
// 176 and 432 bytes with 4 under the 128 registers 512 threads allow).
__host__ __device__ constexpr int stationary_rows(int bits, int unit) {
  const PlaneGeometry planes = plane_geometry(bits);
  const int words = planes.count * unit / 4;
  const int activations = unit * 8 / planes.width[0];
  return 2 * 4 * words + activations <= 96 ? 4 : 2;
}


// Version 3 (batch 1): column-stationary and persistent. A CTA spans a whole row, thread t owning
// unit t of every row (so its block and byte j never change): it loads that unit's rotated
// activations into registers once and multiplies them with unit t of every row the CTA visits.
// The grid is as many CTAs as fit on the SMs, each walking groups of 4 (or 2) rows in a
// strided loop, the next group's codes loaded before the current one is decoded. Per code L1 then
// serves only the codebook read (version 1 also re-read each activation once per 4 rows through
// uncoalesced float4 loads, and Nsight found it bound by L1). A group's sums leave
// each warp by a transposed shuffle tree (one value per lane after log2(rows) halving steps, then
// a plain butterfly), then one barrier and one thread per row over the warps' partials.
// Rows of up to kStationaryMaxThreads units (Q4/Q5, block 128: 16384 columns) take it.
template <int kBits, int kUnit>
__global__ void __launch_bounds__(kStationaryMaxThreads) hlwq_gemv_stationary_kernel(HlwqView weight,
                                                                                     const float* rotated, float* y,
                                                                                     int block_log2) {
  constexpr int kRows = stationary_rows(kBits, kUnit);
  constexpr PlaneGeometry kPlanes = plane_geometry(kBits);
  constexpr int kFields0 = 8 / kPlanes.width[0];
  constexpr int kWords = kUnit / 4;
  using Codes = UnitCodes<kBits, kUnit, kRows>;
  __shared__ float codebook[1 << kBits];

  const BlockPlanes<kBits> planes(block_log2);
  const int64_t block_bytes = static_cast<int64_t>(weight.block) * kBits / 8;
  const int units_per_block_log2 = planes.log2_bytes[0] - (kUnit == 16 ? 4 : kUnit == 8 ? 3 : 2);
  const int64_t units = weight.blocks << units_per_block_log2;
  const bool has_unit = threadIdx.x < units;
  const int64_t block_index = has_unit ? threadIdx.x >> units_per_block_log2 : 0;
  const int j = static_cast<int>(threadIdx.x & ((1u << units_per_block_log2) - 1)) * kUnit;

  auto load_group = [&](int64_t group, Codes& into) {
    if (!has_unit) return;
    const uint8_t* row_codes[kRows];
    const uint16_t* row_gains[kRows];
    cta_rows<kRows>(weight, group * kRows, row_codes, row_gains);
    load_unit<kBits, kUnit, kRows>(row_codes, row_gains, planes, block_bytes, block_index, j, into);
  };

  float4 x[kFields0][kWords];
  const float* x_block = rotated + block_index * weight.block;
#pragma unroll
  for (int k = 0; k < kFields0; ++k) {
#pragma unroll
    for (int c = 0; c < kWords; ++c) {
      x[k][c] = has_unit ? load_float4(x_block + (static_cast<int64_t>(k) << planes.log2_bytes[0]) + j + 4 * c)
                         : make_float4(0, 0, 0, 0);
    }
  }
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) codebook[i] = weight.centroids[i];
  __syncthreads();
  const char* codebook_bytes = reinterpret_cast<const char*>(codebook);
  const auto activations = [&](int k, int c, int) { return x[k][c]; };
  stationary_row_groups<kRows, Codes>(weight.rows, y, load_group, [&](const Codes& codes, float (&sums)[kRows]) {
    float acc[kRows][1] = {};
    if (has_unit) accumulate_unit<kBits, kUnit, kRows, 1>(codes, planes, j, codebook_bytes, acc, activations);
#pragma unroll
    for (int r = 0; r < kRows; ++r) sums[r] = acc[r][0];
  });
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
          weight, rotated, static_cast<int>(batch), y, log2_of_block(weight.block));
    });
  }
}

// Units (of unit_bytes of the first plane) in one row of the weight.
int64_t units_per_row(const HlwqView& weight) {
  const int64_t first_plane_bytes = plane_bytes(plane_geometry(weight.bits), 0, weight.block);
  return weight.blocks * (first_plane_bytes / unit_bytes(weight.bits, weight.block));
}

// Whether version 3 takes this weight at this batch: batch 1, rows of at most
// kStationaryMaxThreads units.
bool stationary_applies(const HlwqView& weight, int64_t batch) {
  return batch == 1 && units_per_row(weight) <= kStationaryMaxThreads;
}

template <int kBits, int kUnit>
void launch_stationary(const HlwqView& weight, const float* rotated, float* y, cudaStream_t stream) {
  if constexpr (unit_reachable(kBits, kUnit)) {
    const int64_t units = units_per_row(weight);
    constexpr int kRows = stationary_rows(kBits, kUnit);
    const StationaryShape shape =
        stationary_shape(hlwq_gemv_stationary_kernel<kBits, kUnit>, units, (weight.rows + kRows - 1) / kRows);
    hlwq_gemv_stationary_kernel<kBits, kUnit><<<shape.grid, shape.threads, 0, stream>>>(
        weight, rotated, y, log2_of_block(weight.block));
  }
}

template <int kBits>
void launch_bits(const HlwqView& weight, const float* rotated, int64_t batch, float* y, GemvVersion version,
                 cudaStream_t stream) {
  if (version == GemvVersion::column_stationary && stationary_applies(weight, batch)) {
    switch (unit_bytes(kBits, weight.block)) {
      case 16: launch_stationary<kBits, 16>(weight, rotated, y, stream); break;
      case 8: launch_stationary<kBits, 8>(weight, rotated, y, stream); break;
      case 4: launch_stationary<kBits, 4>(weight, rotated, y, stream); break;
      default: break;
    }
    return;
  }
  const bool coalesced = version == GemvVersion::coalesced_words ? batch <= 4
                         : version == GemvVersion::best_measured ? batch >= 2 && batch <= 4
                                                                 : false;
  if (coalesced) {
    with_batch_tile(batch, [&](auto tile) {
      constexpr int kTile = decltype(tile)::value;
      if constexpr (kTile <= 4) {
        hlwq_gemv_coalesced_kernel<kBits, kTile><<<gemv_grid(weight.rows, kTile), kGemvThreads, 0, stream>>>(
            weight, rotated, static_cast<int>(batch), y, log2_of_block(weight.block));
      }
    });
    return;
  }
  switch (unit_bytes(kBits, weight.block)) {
    case 16: launch_unit<kBits, 16>(weight, rotated, batch, y, stream); break;
    case 8: launch_unit<kBits, 8>(weight, rotated, batch, y, stream); break;
    case 4: launch_unit<kBits, 4>(weight, rotated, batch, y, stream); break;
    default: break;
  }
}

}  // namespace

uint64_t hlwq_rotated_bytes(const HlwqView& weight, int64_t batch) {
  const uint64_t values = static_cast<uint64_t>(batch * weight.padded_columns);
  return values * sizeof(float) + (hlwq_pairs_apply(weight) ? values * sizeof(__half) : 0);
}

void hlwq_rotate_activations(const HlwqView& weight, const float* x, int64_t batch, float* rotated,
                             cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(weight.blocks), static_cast<unsigned>(batch));
  __half* pairs = hlwq_pairs_apply(weight) ? reinterpret_cast<__half*>(rotated + batch * weight.padded_columns) : nullptr;
  hlwq_rotate_kernel<<<grid, weight.block, weight.block * sizeof(float), stream>>>(weight, x, rotated, pairs);
  check_launch("HLWQ activation rotation");
}

bool hlwq_gemv_applies(const HlwqView& weight, int64_t batch) {
  return weight.bits >= 2 && weight.bits <= 8 && power_of_two_block(weight.block, 32, 1024) && batch >= 1 &&
         batch <= kMaxGemvBatch;
}

void hlwq_gemv(const HlwqView& weight, const float* rotated, int64_t batch, float* y, GemvVersion version,
               cudaStream_t stream) {
  if (wants_tensor_core_pairs(version, batch)) {
    if (hlwq_pair_gemv_applies(weight, batch)) {
      const auto* pairs = reinterpret_cast<const uint32_t*>(rotated + batch * weight.padded_columns);
      hlwq_pair_gemv(weight, pairs, batch, y, stream);
      check_launch("HLWQ GEMV (tensor-core pairs)");
      return;
    }
    version = GemvVersion::best_measured;  // widths, blocks and batches version 4 does not take
  }
  switch (weight.bits) {
    case 2: launch_bits<2>(weight, rotated, batch, y, version, stream); break;
    case 3: launch_bits<3>(weight, rotated, batch, y, version, stream); break;
    case 4: launch_bits<4>(weight, rotated, batch, y, version, stream); break;
    case 5: launch_bits<5>(weight, rotated, batch, y, version, stream); break;
    case 6: launch_bits<6>(weight, rotated, batch, y, version, stream); break;
    case 7: launch_bits<7>(weight, rotated, batch, y, version, stream); break;
    case 8: launch_bits<8>(weight, rotated, batch, y, version, stream); break;
    default: break;
  }
  check_launch("HLWQ GEMV");
}

}  // namespace hlwq::cuda::kernels
