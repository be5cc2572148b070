// The decode product (batch 1..16) for formats whose units hold consecutive columns: MLX affine,
// CompressedTensors INT4 and dense rows. A format supplies
//   View                         the weight's device view,
//   kCodes                       columns per unit (a multiple of 4),
//   kAffine                      whether weights are scale * raw + offset per unit (quantized formats),
//   units(view)                  units per row,
//   Unit load(view, row, unit)   the unit's raw words and, for affine formats, scale and offset,
//   float raw(unit, i)           value i of the unit (code as a float, or the dense value), i known
//                                at compile time,
// and this driver does the rest (the CTA shape of gemv_common.cuh): per unit the activations of
// kCodes columns are loaded once per x row as float4 (from L1) and used for all rows of the CTA.
//
// Affine formats at batch tiles <= 4 factor the group constants out of the unit:
// sum_i (s q_i + b) x_i = s sum_i q_i x_i + b sum_i x_i, with sum_i x_i shared by the CTA's rows. Per
// code that leaves the code extraction (shift, mask/OR), one exact add to make the float, and one FMA
// per x row: about 4 instructions per code instead of 5 (predicted ~16 bytes of codes per SM clock
// at 4 dispatches per clock, above the ~12 the H100's memory delivers per SM; measured far less,
// 0.16-0.41 of the read bandwidth, limited by latency per CTA: docs/KERNELS.md). The 16-row tile
// has too few registers for the per-unit sums and applies s q + b per code (one FMA amortized over
// up to 16 x rows).
#pragma once

#include "ops/cuda/gemv_common.cuh"

namespace hlwq::cuda::kernels {

template <class Format, int kTile>
__global__ void __launch_bounds__(kGemvThreads)
    contiguous_gemv_kernel(typename Format::View weight, const float* x, int batch, float* y) {
  constexpr int kCodes = Format::kCodes;
  static_assert(kCodes % 4 == 0);
  constexpr bool kFactorUnit = Format::kAffine && kTile <= 4;
  constexpr int kRows = gemv_rows_per_cta(kTile);
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t units = Format::units(weight);
  const int64_t columns = weight.columns;
  int64_t rows_here[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows_here[r] = min(first_row + r, weight.rows - 1);

  float acc[kRows][kTile] = {};
  for (int64_t unit = threadIdx.x; unit < units; unit += kGemvThreads) {
    typename Format::Unit loaded[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) loaded[r] = Format::load(weight, rows_here[r], unit);
    const float* x_unit = x + unit * kCodes;
    float unit_acc[kRows][kTile] = {};
    float x_sum[kTile] = {};
#pragma unroll
    for (int c = 0; c < kCodes / 4; ++c) {
      float4 xv[kTile];
#pragma unroll
      for (int b = 0; b < kTile; ++b) {
        xv[b] = (kTile == 1 || b < batch) ? load_float4(x_unit + b * columns + 4 * c) : make_float4(0, 0, 0, 0);
        if constexpr (kFactorUnit && Format::kOffset) x_sum[b] += (xv[b].x + xv[b].y) + (xv[b].z + xv[b].w);
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const float raw = Format::raw(loaded[r], 4 * c + t);
          if constexpr (kFactorUnit) {
#pragma unroll
            for (int b = 0; b < kTile; ++b) {
              const float xt = t == 0 ? xv[b].x : t == 1 ? xv[b].y : t == 2 ? xv[b].z : xv[b].w;
              unit_acc[r][b] = fmaf(raw, xt, unit_acc[r][b]);
            }
          } else {
            const float value = Format::weight(loaded[r], raw);
#pragma unroll
            for (int b = 0; b < kTile; ++b) {
              const float xt = t == 0 ? xv[b].x : t == 1 ? xv[b].y : t == 2 ? xv[b].z : xv[b].w;
              acc[r][b] = fmaf(value, xt, acc[r][b]);
            }
          }
        }
      }
    }
    if constexpr (kFactorUnit) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int b = 0; b < kTile; ++b) {
          acc[r][b] = fmaf(loaded[r].scale, unit_acc[r][b], acc[r][b]);
          if constexpr (Format::kOffset) acc[r][b] = fmaf(loaded[r].offset, x_sum[b], acc[r][b]);
        }
      }
    }
  }
  reduce_and_store<kRows, kTile>(acc, first_row, weight.rows, batch, y);
}

// Version 3 (batch 1, rows of at most kStationaryMaxThreads units): column-stationary, as the
// HLWQ kernel's version 3. Thread t owns unit t of every row: its kCodes activations (and, for
// formats with an offset, their sum) are loaded once into registers; a persistent grid walks
// groups of 4 rows (2 where a unit is more than 24 bytes: MLX 5-8 bits), the next group's units
// loaded while the current one is decoded, so per code there is no memory access but the code's
// own bytes. Per unit and row: s * sum q x + b * sum x, as the 4-row tile computes it.
template <class Format>
__host__ __device__ constexpr int contiguous_stationary_rows() {
  return sizeof(typename Format::Unit) <= 24 ? 4 : 2;
}

template <class Format>
__global__ void __launch_bounds__(kStationaryMaxThreads)
    contiguous_gemv_stationary_kernel(typename Format::View weight, const float* x, float* y) {
  constexpr int kCodes = Format::kCodes;
  constexpr int kRows = contiguous_stationary_rows<Format>();
  using Unit = typename Format::Unit;
  struct Codes {
    Unit rows[kRows];
  };
  const int64_t units = Format::units(weight);
  const bool has_unit = threadIdx.x < units;
  const int64_t unit = has_unit ? threadIdx.x : 0;
  float4 xv[kCodes / 4];
  float x_sum = 0;
#pragma unroll
  for (int c = 0; c < kCodes / 4; ++c) {
    xv[c] = has_unit ? load_float4(x + unit * kCodes + 4 * c) : make_float4(0, 0, 0, 0);
    if constexpr (Format::kAffine && Format::kOffset) x_sum += (xv[c].x + xv[c].y) + (xv[c].z + xv[c].w);
  }
  const auto load = [&](int64_t group, Codes& into) {
    if (!has_unit) return;
#pragma unroll
    for (int r = 0; r < kRows; ++r) into.rows[r] = Format::load(weight, min(group * kRows + r, weight.rows - 1), unit);
  };
  stationary_row_groups<kRows, Codes>(weight.rows, y, load, [&](const Codes& codes, float (&sums)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float sum = 0;
      if (has_unit) {
#pragma unroll
        for (int c = 0; c < kCodes / 4; ++c) {
#pragma unroll
          for (int t = 0; t < 4; ++t) {
            const float raw = Format::raw(codes.rows[r], 4 * c + t);
            const float xt = t == 0 ? xv[c].x : t == 1 ? xv[c].y : t == 2 ? xv[c].z : xv[c].w;
            sum = fmaf(Format::kAffine ? raw : Format::weight(codes.rows[r], raw), xt, sum);
          }
        }
        if constexpr (Format::kAffine) {
          sum = codes.rows[r].scale * sum;
          if constexpr (Format::kOffset) sum = fmaf(codes.rows[r].offset, x_sum, sum);
        }
      }
      sums[r] = sum;
    }
  });
}

// Whether version 3 takes this product: batch 1, rows of at most kStationaryMaxThreads units.
template <class Format>
bool contiguous_stationary_applies(const typename Format::View& weight, int64_t batch) {
  return batch == 1 && weight.columns % Format::kCodes == 0 && weight.columns / Format::kCodes <= kStationaryMaxThreads;
}

template <class Format>
void launch_contiguous_gemv(const typename Format::View& weight, const float* x, int64_t batch, float* y,
                            GemvVersion version, cudaStream_t stream) {
  if (version == GemvVersion::column_stationary && contiguous_stationary_applies<Format>(weight, batch)) {
    constexpr int kRows = contiguous_stationary_rows<Format>();
    const StationaryShape shape = stationary_shape(contiguous_gemv_stationary_kernel<Format>,
                                                   weight.columns / Format::kCodes, (weight.rows + kRows - 1) / kRows);
    contiguous_gemv_stationary_kernel<Format><<<shape.grid, shape.threads, 0, stream>>>(weight, x, y);
    return;
  }
  with_batch_tile(batch, [&](auto tile) {
    constexpr int kTile = decltype(tile)::value;
    contiguous_gemv_kernel<Format, kTile>
        <<<gemv_grid(weight.rows, kTile), kGemvThreads, 0, stream>>>(weight, x, static_cast<int>(batch), y);
  });
}

}  // namespace hlwq::cuda::kernels
