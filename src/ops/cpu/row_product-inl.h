// Per-target pieces every CPU linear kernel shares: the dot product of one weight row (F32, F16 or
// BF16) with a tile of 1..4 activation rows, the driver that walks a range of output rows with the
// batch split into such tiles, and the unpacking of 4-bit nibbles and affine codes to floats.
// Include inside a Highway target loop (after hwy/foreach_target.h), like any -inl.h header.

// Per-target include guard: re-included once per SIMD target.
#if defined(HLWQ_OPS_CPU_ROW_PRODUCT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HLWQ_OPS_CPU_ROW_PRODUCT_INL_H_
#undef HLWQ_OPS_CPU_ROW_PRODUCT_INL_H_
#else
#define HLWQ_OPS_CPU_ROW_PRODUCT_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "ops/cpu/row_product.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Prefetches the cache line `ahead` bytes past `data`, which may lie past the end of the buffer
// (the hardware stream prefetcher stops at 4 KiB page ends; a prefetch never faults). The address
// is formed as an integer: pointer arithmetic past the end of an array would be undefined.
HWY_INLINE void PrefetchAhead(const void* data, size_t ahead) {
  hwy::Prefetch(reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(data) + ahead));
}

// Prefetches the cache lines of bytes [offset, offset + bytes) past `data` (as PrefetchAhead: the
// range may lie past the end of the buffer).
HWY_INLINE void PrefetchRange(const void* data, size_t offset, size_t bytes) {
  if (bytes == 0) return;
  for (size_t byte = 0; byte < bytes; byte += 64) PrefetchAhead(data, offset + byte);
  PrefetchAhead(data, offset + bytes - 1);  // the last line when the range does not start one
}

// One vector of weights widened to float.
template <class D>
HWY_INLINE hn::Vec<D> LoadWeights(D d, const float* HWY_RESTRICT weights) {
  return hn::LoadU(d, weights);
}
template <class D>
HWY_INLINE hn::Vec<D> LoadWeights(D d, const hwy::bfloat16_t* HWY_RESTRICT weights) {
  return hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::bfloat16_t, D>(), weights));
}
template <class D>
HWY_INLINE hn::Vec<D> LoadWeights(D d, const hwy::float16_t* HWY_RESTRICT weights) {
  return hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::float16_t, D>(), weights));
}

// out[t * out_stride] = <weights, x + t * x_stride> over `length` values for t < kTile. Each weight
// vector is loaded once and used kTile times. Small tiles keep several independent sums per row
// (kUnroll) so the multiply-add latency is hidden; the order of the sums is fixed per target.
template <size_t kTile, typename T>
HWY_INLINE void DotTile(const T* HWY_RESTRICT weights, const float* HWY_RESTRICT x, size_t x_stride,
                        size_t length, float* HWY_RESTRICT out, size_t out_stride, bool accumulate) {
  const hn::ScalableTag<float> d;
  constexpr size_t kUnroll = kTile == 1 ? 4 : (kTile == 2 ? 2 : 1);
  const size_t lanes = hn::Lanes(d);
  hn::Vec<decltype(d)> sums[kTile][kUnroll];
  for (size_t t = 0; t < kTile; ++t) {
    for (size_t u = 0; u < kUnroll; ++u) sums[t][u] = hn::Zero(d);
  }
  size_t i = 0;
  for (; i + kUnroll * lanes <= length; i += kUnroll * lanes) {
    for (size_t u = 0; u < kUnroll; ++u) {
      const auto w = LoadWeights(d, weights + i + u * lanes);
      for (size_t t = 0; t < kTile; ++t) {
        sums[t][u] = hn::MulAdd(w, hn::LoadU(d, x + t * x_stride + i + u * lanes), sums[t][u]);
      }
    }
  }
  for (; i + lanes <= length; i += lanes) {
    const auto w = LoadWeights(d, weights + i);
    for (size_t t = 0; t < kTile; ++t) sums[t][0] = hn::MulAdd(w, hn::LoadU(d, x + t * x_stride + i), sums[t][0]);
  }
  for (size_t t = 0; t < kTile; ++t) {
    for (size_t u = 1; u < kUnroll; ++u) sums[t][0] = hn::Add(sums[t][0], sums[t][u]);
    float total = hn::GetLane(hn::SumOfLanes(d, sums[t][0]));
    for (size_t j = i; j < length; ++j) total += hn::GetLane(LoadWeights(hn::CappedTag<float, 1>(), weights + j)) *
                                                 x[t * x_stride + j];
    out[t * out_stride] = accumulate ? out[t * out_stride] + total : total;
  }
}

// Two weight rows times a tile of four activation rows: eight sums, and 6 loads per 8 multiply-adds
// instead of 5 per 4, the large-batch inner loop. out[t * out_stride + k] for row k of the pair.
template <typename T>
HWY_INLINE void DotTwoRowsTile4(const T* HWY_RESTRICT row0, const T* HWY_RESTRICT row1, const float* HWY_RESTRICT x,
                                size_t x_stride, size_t length, float* HWY_RESTRICT out, size_t out_stride,
                                bool accumulate) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  hn::Vec<decltype(d)> sums0[4], sums1[4];
  for (size_t t = 0; t < 4; ++t) sums0[t] = sums1[t] = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= length; i += lanes) {
    const auto w0 = LoadWeights(d, row0 + i);
    const auto w1 = LoadWeights(d, row1 + i);
    for (size_t t = 0; t < 4; ++t) {
      const auto xt = hn::LoadU(d, x + t * x_stride + i);
      sums0[t] = hn::MulAdd(w0, xt, sums0[t]);
      sums1[t] = hn::MulAdd(w1, xt, sums1[t]);
    }
  }
  const hn::CappedTag<float, 1> d1;
  for (size_t t = 0; t < 4; ++t) {
    float total0 = hn::GetLane(hn::SumOfLanes(d, sums0[t]));
    float total1 = hn::GetLane(hn::SumOfLanes(d, sums1[t]));
    for (size_t j = i; j < length; ++j) {
      total0 += hn::GetLane(LoadWeights(d1, row0 + j)) * x[t * x_stride + j];
      total1 += hn::GetLane(LoadWeights(d1, row1 + j)) * x[t * x_stride + j];
    }
    out[t * out_stride] = accumulate ? out[t * out_stride] + total0 : total0;
    out[t * out_stride + 1] = accumulate ? out[t * out_stride + 1] + total1 : total1;
  }
}

// Columns per pass over a chunk in the small-batch path: four activation rows of 2048 floats
// (32 KiB) stay in L1 while every row of the chunk is multiplied with them; partial sums are added
// into y segment by segment (a fixed order, so results still do not depend on the thread count).
constexpr size_t kSegmentColumns = 2048;

// Row r of the decode scratch. Dense rows need none and pass a null scratch: offsetting a null
// pointer is undefined behaviour even when the result is never read, so it stays null.
HWY_INLINE float* ScratchRow(float* scratch, size_t r, size_t length) {
  return scratch == nullptr ? nullptr : scratch + r * length;
}

// Small batches (at most 4 rows, chunk_rows 1): each weight row is read once and dotted with the
// whole batch, two weight rows at a time when the batch is exactly a tile of 4.
template <typename T, class RowOf>
HWY_INLINE void ProductOfRowsSmallBatch(const RowProductShape& shape, size_t begin, size_t end,
                                        float* HWY_RESTRICT scratch, const RowOf& row_of) {
  const T* chunk[kMaxChunkRows];
  const size_t chunk_rows = std::min(shape.chunk_rows, kMaxChunkRows);
  for (size_t first = begin; first < end; first += chunk_rows) {
    const size_t count = std::min(chunk_rows, end - first);
    for (size_t k = 0; k < count; ++k) chunk[k] = row_of(first + k, ScratchRow(scratch, k, shape.length));
    for (size_t segment = 0; segment < shape.length; segment += kSegmentColumns) {
      const size_t columns = std::min(kSegmentColumns, shape.length - segment);
      const bool accumulate = segment > 0;
      size_t b = 0;
      for (; b + 4 <= shape.batch; b += 4) {
        const float* x = shape.x + b * shape.x_stride + segment;
        float* y = shape.y + b * shape.rows + first;
        size_t k = 0;
        for (; k + 2 <= count; k += 2) {
          DotTwoRowsTile4(chunk[k] + segment, chunk[k + 1] + segment, x, shape.x_stride, columns, y + k, shape.rows,
                          accumulate);
        }
        if (k < count) DotTile<4>(chunk[k] + segment, x, shape.x_stride, columns, y + k, shape.rows, accumulate);
      }
      const size_t left = shape.batch - b;
      const float* x = shape.x + b * shape.x_stride + segment;
      float* y = shape.y + b * shape.rows + first;
      for (size_t k = 0; k < count; ++k) {
        const T* row = chunk[k] + segment;
        if (left == 3) DotTile<3>(row, x, shape.x_stride, columns, y + k, shape.rows, accumulate);
        if (left == 2) DotTile<2>(row, x, shape.x_stride, columns, y + k, shape.rows, accumulate);
        if (left == 1) DotTile<1>(row, x, shape.x_stride, columns, y + k, shape.rows, accumulate);
      }
    }
  }
}

// Large batches (prefill) as a register-blocked matrix product. A panel of two vectors' worth of
// weight rows is widened and transposed once (k-major: panel[k * width + r]); then for each tile of
// kTokens activation rows, every k costs two panel loads, kTokens broadcasts and 2 kTokens
// multiply-adds into accumulators that stay in registers, so the loop runs at the multiply-add
// rate instead of the load rate of dot products. Each output is one float sum in k order (segments
// continue it), whichever lane or thread computes it: results do not depend on the thread count.
constexpr size_t kPanelSegment = 256;  // k values per pass: 256 x 32 floats of panel = 32 KiB (L1)

// Activation rows per tile: 2 x kTokens accumulators plus three working vectors must fit the
// register file (32 vectors with AVX-512, 16 elsewhere).
constexpr size_t kPanelTokens = HWY_TARGET <= HWY_AVX3 ? 8 : 6;

template <size_t kTokens>
HWY_INLINE void PanelTile(const float* HWY_RESTRICT panel, const float* HWY_RESTRICT x, size_t x_stride, size_t depth,
                          float* HWY_RESTRICT y, size_t y_stride, size_t count, bool accumulate) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const size_t width = 2 * lanes;
  hn::Vec<decltype(d)> sums[kTokens][2];
  HWY_ALIGN float partial[kMaxChunkRows];  // width = 2 * lanes <= kMaxChunkRows
  for (size_t t = 0; t < kTokens; ++t) {
    if (!accumulate) {
      sums[t][0] = sums[t][1] = hn::Zero(d);
    } else if (count == width) {
      sums[t][0] = hn::LoadU(d, y + t * y_stride);
      sums[t][1] = hn::LoadU(d, y + t * y_stride + lanes);
    } else {  // a last, narrower panel: only `count` outputs exist
      std::fill(partial, partial + width, 0.0f);
      std::copy(y + t * y_stride, y + t * y_stride + count, partial);
      sums[t][0] = hn::Load(d, partial);
      sums[t][1] = hn::Load(d, partial + lanes);
    }
  }
  for (size_t k = 0; k < depth; ++k) {
    const auto w0 = hn::Load(d, panel + k * width);
    const auto w1 = hn::Load(d, panel + k * width + lanes);
    for (size_t t = 0; t < kTokens; ++t) {
      const auto xk = hn::Set(d, x[t * x_stride + k]);
      sums[t][0] = hn::MulAdd(w0, xk, sums[t][0]);
      sums[t][1] = hn::MulAdd(w1, xk, sums[t][1]);
    }
  }
  for (size_t t = 0; t < kTokens; ++t) {
    if (count == width) {
      hn::StoreU(sums[t][0], d, y + t * y_stride);
      hn::StoreU(sums[t][1], d, y + t * y_stride + lanes);
    } else {
      hn::Store(sums[t][0], d, partial);
      hn::Store(sums[t][1], d, partial + lanes);
      std::copy(partial, partial + count, y + t * y_stride);
    }
  }
}

// Values [segment, segment + depth) of rows 0..count-1 (each a row of T) into panel columns,
// widened to float; columns count..width-1 are zero.
template <typename T>
HWY_INLINE void FillPanel(const T* const* rows, size_t count, size_t segment, size_t depth, size_t width,
                          float* HWY_RESTRICT widened, float* HWY_RESTRICT panel) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  for (size_t r = 0; r < width; ++r) {
    if (r >= count) {
      for (size_t k = 0; k < depth; ++k) panel[k * width + r] = 0.0f;
      continue;
    }
    const T* row = rows[r] + segment;
    const float* source = widened;
    if constexpr (std::is_same_v<T, float>) {
      source = row;
    } else {
      size_t k = 0;
      for (; k + lanes <= depth; k += lanes) hn::Store(LoadWeights(d, row + k), d, widened + k);
      for (; k < depth; ++k) widened[k] = hn::GetLane(LoadWeights(hn::CappedTag<float, 1>(), row + k));
    }
    for (size_t k = 0; k < depth; ++k) panel[k * width + r] = source[k];
  }
}

template <typename T, class RowOf>
HWY_INLINE void ProductOfRowsPanel(const RowProductShape& shape, size_t begin, size_t end, float* HWY_RESTRICT scratch,
                                   const RowOf& row_of) {
  const size_t lanes = hn::Lanes(hn::ScalableTag<float>());
  const size_t width = 2 * lanes;  // at most kMaxChunkRows (16 lanes on AVX-512): scratch holds that many rows
  const size_t length = shape.length;
  // One segment's panel (32 KiB): small enough to come from the heap, not a fresh mapping per call.
  auto panel = hwy::AllocateAligned<float>(kPanelSegment * width);
  auto widened = hwy::AllocateAligned<float>(kPanelSegment);
  const T* rows[kMaxChunkRows];
  for (size_t first = begin; first < end; first += width) {
    const size_t count = std::min(width, end - first);
    for (size_t r = 0; r < count; ++r) rows[r] = row_of(first + r, ScratchRow(scratch, r, length));
    for (size_t segment = 0; segment < length; segment += kPanelSegment) {
      const size_t depth = std::min(kPanelSegment, length - segment);
      const bool accumulate = segment > 0;
      FillPanel<T>(rows, count, segment, depth, width, widened.get(), panel.get());
      const float* segment_panel = panel.get();
      size_t t = 0;
      for (; t + kPanelTokens <= shape.batch; t += kPanelTokens) {
        PanelTile<kPanelTokens>(segment_panel, shape.x + t * shape.x_stride + segment, shape.x_stride, depth,
                                shape.y + t * shape.rows + first, shape.rows, count, accumulate);
      }
      const float* x = shape.x + t * shape.x_stride + segment;
      float* y = shape.y + t * shape.rows + first;
      switch (shape.batch - t) {
        case 7: PanelTile<7>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        case 6: PanelTile<6>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        case 5: PanelTile<5>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        case 4: PanelTile<4>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        case 3: PanelTile<3>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        case 2: PanelTile<2>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        case 1: PanelTile<1>(segment_panel, x, shape.x_stride, depth, y, shape.rows, count, accumulate); break;
        default: break;
      }
    }
  }
}

// Rows [begin, end): row_of(r, scratch) returns a pointer to the `length` values of weight row r
// (either the stored row or scratch, room for `length` floats, filled with the decoded row).
// scratch holds shape.chunk_rows rows (kMaxChunkRows once the batch exceeds 4).
template <typename T, class RowOf>
HWY_INLINE void ProductOfRows(const RowProductShape& shape, size_t begin, size_t end, float* HWY_RESTRICT scratch,
                              const RowOf& row_of) {
  if (shape.batch <= 4) return ProductOfRowsSmallBatch<T>(shape, begin, end, scratch, row_of);
  ProductOfRowsPanel<T>(shape, begin, end, scratch, row_of);
}

// 2 * bytes codes from bytes of nibbles, low nibble first (the order of MLX 4-bit words and of
// compressed-tensors INT4 words on a little-endian machine).
HWY_INLINE void UnpackNibbles(const uint8_t* HWY_RESTRICT packed, size_t bytes, uint8_t* HWY_RESTRICT codes) {
  size_t j = 0;
#if HWY_TARGET != HWY_SCALAR
  // 128-bit vectors (16 lanes on every target but the scalar one): interleaving the low and high
  // nibbles puts the codes in order.
  const hn::CappedTag<uint8_t, 16> d;
  const size_t lanes = hn::Lanes(d);
  const auto low_mask = hn::Set(d, uint8_t{0x0f});
  for (; j + lanes <= bytes; j += lanes) {
    const auto v = hn::LoadU(d, packed + j);
    const auto low = hn::And(v, low_mask);
    const auto high = hn::ShiftRight<4>(v);
    hn::StoreU(hn::InterleaveLower(d, low, high), d, codes + 2 * j);
    hn::StoreU(hn::InterleaveUpper(d, low, high), d, codes + 2 * j + lanes);
  }
#endif
  for (; j < bytes; ++j) {
    codes[2 * j] = packed[j] & 0x0f;
    codes[2 * j + 1] = packed[j] >> 4;
  }
}

// out[i] = scale_g * (code[i] + code_offset) + bias_g for groups of group_size (a multiple of the
// float vector length) codes: one convert and one multiply-add per vector.
HWY_INLINE void AffineCodesToFloats(const uint8_t* HWY_RESTRICT codes, const float* HWY_RESTRICT scales,
                                    const float* HWY_RESTRICT biases, float code_offset, size_t groups,
                                    size_t group_size, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> du8;
  const size_t lanes = hn::Lanes(d);
  for (size_t g = 0; g < groups; ++g) {
    const float scale = scales[g];
    const float bias = (biases != nullptr ? biases[g] : 0.0f) + scale * code_offset;
    const auto scale_vector = hn::Set(d, scale);
    const auto bias_vector = hn::Set(d, bias);
    for (size_t i = g * group_size; i < (g + 1) * group_size; i += lanes) {
      const auto q = hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(du8, codes + i)));
      hn::StoreU(hn::MulAdd(q, scale_vector, bias_vector), d, out + i);
    }
  }
}

// Decode-time product for 4-bit nibble rows (MLX 4-bit, INT4), small batches. The activations are
// first reordered to the nibbles' order (per run of 2 * lanes codes: the even columns, then the
// odd ones), so one widening load of `lanes` bytes gives the low nibbles for the first half and
// the high nibbles for the second, with no interleave per weight. The affine term is factored
// out of each group: sum_g s_g <n_g, x_g> + (b_g + code_offset s_g) sum(x_g), with the group
// sums of x computed once per call.
struct NibbleRowsShape {
  const uint8_t* packed = nullptr;  // rows x columns / 2 bytes
  const float* scales = nullptr;    // rows x groups
  const float* biases = nullptr;    // rows x groups, or null
  float code_offset = 0;            // w = s (n + code_offset) + b
  size_t group_size = 0;            // a multiple of 2 * lanes
};

// offsets[t] = sum_g (bias_g + code_offset * scale_g) * sum(x_t over g) for one row, in double
// vectors after the row's loop: inside it they were a scalar convert, load and multiply-add per
// group, a large share of a short row's work (a 576-wide row has 9 groups of two vector steps each).
template <size_t kTile>
HWY_INLINE void NibbleOffsets(const NibbleRowsShape& nibbles, size_t row, size_t groups,
                              const double* HWY_RESTRICT group_sums, double* HWY_RESTRICT offsets) {
  const float* HWY_RESTRICT scales = nibbles.scales + row * groups;
  const float* HWY_RESTRICT biases = nibbles.biases != nullptr ? nibbles.biases + row * groups : nullptr;
  if (biases != nullptr || nibbles.code_offset != 0.0f) {
    const hn::ScalableTag<double> dd;
    const hn::Rebind<float, decltype(dd)> df;
    const size_t double_lanes = hn::Lanes(dd);
    const auto code_offset = hn::Set(dd, static_cast<double>(nibbles.code_offset));
    for (size_t t = 0; t < kTile; ++t) {
      const double* HWY_RESTRICT sums_of_x = group_sums + t * groups;
      auto accumulated = hn::Zero(dd);
      size_t g = 0;
      for (; g + double_lanes <= groups; g += double_lanes) {
        auto bias = hn::Mul(hn::PromoteTo(dd, hn::LoadU(df, scales + g)), code_offset);
        if (biases != nullptr) bias = hn::Add(bias, hn::PromoteTo(dd, hn::LoadU(df, biases + g)));
        accumulated = hn::MulAdd(bias, hn::LoadU(dd, sums_of_x + g), accumulated);
      }
      offsets[t] = hn::GetLane(hn::SumOfLanes(dd, accumulated));
      for (; g < groups; ++g) {
        const double bias = static_cast<double>(biases != nullptr ? biases[g] : 0.0f) +
                            static_cast<double>(nibbles.code_offset) * scales[g];
        offsets[t] += bias * sums_of_x[g];
      }
    }
  }
}

template <size_t kTile>
HWY_INLINE void NibbleRowTile(const NibbleRowsShape& nibbles, size_t row, size_t columns,
                              const float* HWY_RESTRICT x, const double* HWY_RESTRICT group_sums,
                              float* HWY_RESTRICT out, size_t out_stride) {
  const hn::ScalableTag<float> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> du8;
  const size_t lanes = hn::Lanes(d);
  const size_t groups = columns / nibbles.group_size;
  const uint8_t* HWY_RESTRICT packed = nibbles.packed + row * columns / 2;
  const float* HWY_RESTRICT scales = nibbles.scales + row * groups;
  const auto low_mask = hn::Set(du, 0x0fu);
  hn::Vec<decltype(d)> totals[kTile];
  double offsets[kTile] = {};
  for (size_t t = 0; t < kTile; ++t) totals[t] = hn::Zero(d);
  for (size_t g = 0; g < groups; ++g) {
    hn::Vec<decltype(d)> sums[kTile][2];
    for (size_t t = 0; t < kTile; ++t) sums[t][0] = sums[t][1] = hn::Zero(d);
    const size_t first = g * nibbles.group_size;
    PrefetchAhead(packed + first / 2, 1024);
    for (size_t i = first; i < first + nibbles.group_size; i += 2 * lanes) {
      const auto bytes = hn::PromoteTo(du, hn::LoadU(du8, packed + i / 2));
      const auto low = hn::ConvertTo(d, hn::BitCast(di, hn::And(bytes, low_mask)));
      const auto high = hn::ConvertTo(d, hn::BitCast(di, hn::ShiftRight<4>(bytes)));
      for (size_t t = 0; t < kTile; ++t) {
        sums[t][0] = hn::MulAdd(low, hn::LoadU(d, x + t * columns + i), sums[t][0]);
        sums[t][1] = hn::MulAdd(high, hn::LoadU(d, x + t * columns + i + lanes), sums[t][1]);
      }
    }
    const auto scale_vector = hn::Set(d, scales[g]);
    for (size_t t = 0; t < kTile; ++t) totals[t] = hn::MulAdd(hn::Add(sums[t][0], sums[t][1]), scale_vector, totals[t]);
  }
  NibbleOffsets<kTile>(nibbles, row, groups, group_sums, offsets);
  for (size_t t = 0; t < kTile; ++t) {
    out[t * out_stride] = static_cast<float>(hn::GetLane(hn::SumOfLanes(d, totals[t])) + offsets[t]);
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// AVX-512 nibble rows: a 64-byte line (128 codes, 16 words of 8 nibbles) is one register that is
// never widened. vpermps reads only the low 4 bits of each 32-bit index, so the line shifted right
// by 4 m looks up, in lane k, nibble m of word k (code 8 k + m of the line) in a table of the floats
// 0..15: exact, one shift and one permutation per 16 codes where NibbleRowTile spends a widening
// load, a mask, a shift and two conversions per 32. The activations are permuted to that order
// (NibbleLineOrder); each line's partial sums take their groups' scales lane by lane.
HWY_INLINE bool NibbleLinesApply(size_t group_size) { return group_size % 32 == 0 && 128 % group_size == 0; }

// out[t * padded + 128 L + 16 m + k] = x[t * x_stride + 128 L + 8 k + m], zero past `columns`;
// padded: columns rounded up to whole lines; columns a multiple of 8 (NibbleLinesApply). One masked
// gather per 16 values: the scalar loop with its bounds test per value was ~0.3 us of every call
// of every thread on a 576-wide row.
HWY_INLINE void NibbleLineOrder(const float* HWY_RESTRICT x, size_t x_stride, size_t batch, size_t columns,
                                size_t padded, float* HWY_RESTRICT out) {
  const __m512i eight_k = _mm512_set_epi32(120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0);
  for (size_t t = 0; t < batch; ++t) {
    for (size_t line = 0; line < padded; line += 128) {
      // Lanes k with 8 k < columns - line: whole words of the line (a partial last line has fewer).
      const size_t words = std::min<size_t>(16, (columns - line) / 8);
      const __mmask16 valid = static_cast<__mmask16>((1u << words) - 1);
      const float* HWY_RESTRICT line_x = x + t * x_stride + line;
      for (size_t m = 0; m < 8; ++m) {
        const __m512i index = _mm512_add_epi32(eight_k, _mm512_set1_epi32(static_cast<int>(m)));
        _mm512_store_ps(out + t * padded + line + 16 * m,
                        _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, index, line_x, 4));
      }
    }
  }
}

template <int kStep, size_t kTile>
HWY_INLINE void NibbleLineStep(__m512i words, __m512 codes_as_floats, const float* HWY_RESTRICT x, size_t x_stride,
                               __m512 (&sums)[kTile][2]) {
  __m512i index = words;
  if constexpr (kStep != 0) index = _mm512_srli_epi32(words, 4 * kStep);
  const __m512 code = _mm512_permutexvar_ps(index, codes_as_floats);
  for (size_t t = 0; t < kTile; ++t) {
    sums[t][kStep % 2] = _mm512_fmadd_ps(code, _mm512_load_ps(x + t * x_stride + 16 * kStep), sums[t][kStep % 2]);
  }
}

// One line of one row: its words (a masked load; `words_valid` lanes), the 8 lookups and the
// line's groups' scales (`scales_valid` of them from `scales`, lane k taking group_of_lane[k]).
// The line `prefetch` bytes ahead is prefetched: the rows after the ones in flight.
template <size_t kTile>
HWY_INLINE void NibbleLine(const uint8_t* HWY_RESTRICT packed, size_t prefetch, __mmask16 words_valid,
                           const float* HWY_RESTRICT scales,
                           __mmask16 scales_valid, __m512i group_of_lane, const float* HWY_RESTRICT x, size_t x_stride,
                           __m512 (&totals)[kTile]) {
  const __m512 codes_as_floats = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i words = _mm512_maskz_loadu_epi32(words_valid, packed);
  PrefetchAhead(packed, prefetch);
  __m512 sums[kTile][2];
  for (size_t t = 0; t < kTile; ++t) sums[t][0] = sums[t][1] = _mm512_setzero_ps();
  NibbleLineStep<0, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<1, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<2, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<3, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<4, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<5, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<6, kTile>(words, codes_as_floats, x, x_stride, sums);
  NibbleLineStep<7, kTile>(words, codes_as_floats, x, x_stride, sums);
  const __m512 scale = _mm512_permutexvar_ps(group_of_lane, _mm512_maskz_loadu_ps(scales_valid, scales));
  for (size_t t = 0; t < kTile; ++t) totals[t] = _mm512_fmadd_ps(_mm512_add_ps(sums[t][0], sums[t][1]), scale, totals[t]);
}

// The four rows' float sums: lane q of the result is the sum of the 16 lanes of v[q]. A transpose
// and add tree, 10 shuffles and 6 adds, where four separate horizontal sums take 16 and 16.
HWY_INLINE __m128 SumOfFourVectors(const __m512 (&v)[4]) {
  const __m512 pair01 = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x44), _mm512_shuffle_f32x4(v[0], v[1], 0xee));
  const __m512 pair23 = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x44), _mm512_shuffle_f32x4(v[2], v[3], 0xee));
  // 128-bit lane q: four partial sums of v[q].
  const __m512 quads = _mm512_add_ps(_mm512_shuffle_f32x4(pair01, pair23, 0x88), _mm512_shuffle_f32x4(pair01, pair23, 0xdd));
  const __m512 twos = _mm512_add_ps(quads, _mm512_permute_ps(quads, 0x4e));  // [2, 3, 0, 1] in each lane
  const __m512 ones = _mm512_add_ps(twos, _mm512_permute_ps(twos, 0xb1));    // [1, 0, 3, 2]
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), ones));
}

// NibbleOffsets for four consecutive rows and one activation row, in double vectors (masked for a
// last partial vector of groups) reduced together: lane q is row + q's offset.
HWY_INLINE __m256d NibbleOffsetsOfFourRows(const NibbleRowsShape& nibbles, size_t row, size_t groups,
                                           const double* HWY_RESTRICT group_sums) {
  if (nibbles.biases == nullptr && nibbles.code_offset == 0.0f) return _mm256_setzero_pd();
  const __m512d code_offset = _mm512_set1_pd(static_cast<double>(nibbles.code_offset));
  // Groups outer, rows inner (unrolled): the four sums stay in registers (rows outer kept them in
  // memory, a store and reload per step); each row's sum still runs over g in order.
  __m512d accumulated[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
  for (size_t g = 0; g < groups; g += 8) {
    const __mmask8 valid = static_cast<__mmask8>(groups - g >= 8 ? 0xff : (1u << (groups - g)) - 1);
    const __m512d sums = _mm512_maskz_loadu_pd(valid, group_sums + g);
    for (size_t q = 0; q < 4; ++q) {
      const size_t first = (row + q) * groups + g;
      __m512d bias = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, nibbles.scales + first)), code_offset);
      if (nibbles.biases != nullptr) {
        bias = _mm512_add_pd(bias, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, nibbles.biases + first)));
      }
      accumulated[q] = _mm512_fmadd_pd(bias, sums, accumulated[q]);
    }
  }
  const __m512d pair01 = _mm512_add_pd(_mm512_shuffle_f64x2(accumulated[0], accumulated[1], 0x44),
                                       _mm512_shuffle_f64x2(accumulated[0], accumulated[1], 0xee));
  const __m512d pair23 = _mm512_add_pd(_mm512_shuffle_f64x2(accumulated[2], accumulated[3], 0x44),
                                       _mm512_shuffle_f64x2(accumulated[2], accumulated[3], 0xee));
  // 128-bit lane q: two partial sums of row q.
  const __m512d twos = _mm512_add_pd(_mm512_shuffle_f64x2(pair01, pair23, 0x88), _mm512_shuffle_f64x2(pair01, pair23, 0xdd));
  const __m512d ones = _mm512_add_pd(twos, _mm512_permute_pd(twos, 0x55));
  return _mm512_castpd512_pd256(_mm512_permutexvar_pd(_mm512_set_epi64(0, 0, 0, 0, 6, 4, 2, 0), ones));
}

// The last line of two rows when it holds at most half a line of words (576 columns: 4.5 lines),
// the two halves in one register: lanes 0..7 row a's words, lanes 8..15 row b's. Every lane does
// what NibbleLine does to it (the same lookups, multiply-adds and scale, in the same order); the
// lanes NibbleLine spends on code 0 times zero activations are not computed, which left the totals
// unchanged there (adding +0 to a sum that started at +0). One line's work instead of two: ~6% of
// a 576-wide row's port-5 and multiply-add work. x_doubled[16 m + k] = the ordered x of the
// half line at 16 m + k % 8 (HalfLinePairOrder).
HWY_INLINE void NibbleHalfLinePair(const uint8_t* HWY_RESTRICT packed_a, const uint8_t* HWY_RESTRICT packed_b,
                                   size_t prefetch, __mmask8 words_valid, const float* HWY_RESTRICT scales_a,
                                   const float* HWY_RESTRICT scales_b, __mmask16 scales_valid, __m512i group_of_lane,
                                   const float* HWY_RESTRICT x_doubled, __m512& total_a, __m512& total_b) {
  const __m512 codes_as_floats = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i words = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_maskz_loadu_epi32(words_valid, packed_a)),
                                           _mm256_maskz_loadu_epi32(words_valid, packed_b), 1);
  PrefetchAhead(packed_a, prefetch);
  PrefetchAhead(packed_b, prefetch);
  __m512 sums[1][2] = {{_mm512_setzero_ps(), _mm512_setzero_ps()}};
  NibbleLineStep<0, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<1, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<2, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<3, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<4, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<5, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<6, 1>(words, codes_as_floats, x_doubled, 0, sums);
  NibbleLineStep<7, 1>(words, codes_as_floats, x_doubled, 0, sums);
  const __m512 scale_a = _mm512_permutexvar_ps(group_of_lane, _mm512_maskz_loadu_ps(scales_valid, scales_a));
  const __m512 scale_b = _mm512_permutexvar_ps(group_of_lane, _mm512_maskz_loadu_ps(scales_valid, scales_b));
  // Lanes 0..7 of a, then lanes 0..7 of b (128-bit blocks 0, 1 of each).
  const __m512 scale = _mm512_shuffle_f32x4(scale_a, scale_b, 0x44);
  const __m512 totals = _mm512_fmadd_ps(_mm512_add_ps(sums[0][0], sums[0][1]), scale,
                                        _mm512_shuffle_f32x4(total_a, total_b, 0x44));
  total_a = _mm512_insertf32x8(total_a, _mm512_castps512_ps256(totals), 0);
  total_b = _mm512_insertf32x8(total_b, _mm512_extractf32x8_ps(totals, 1), 0);
}

// x_doubled for NibbleHalfLinePair from the ordered activations of the half line at x_line.
HWY_INLINE void HalfLinePairOrder(const float* HWY_RESTRICT x_line, float* HWY_RESTRICT x_doubled) {
  for (size_t m = 0; m < 8; ++m) {
    for (size_t k = 0; k < 16; ++k) x_doubled[16 * m + k] = x_line[16 * m + k % 8];
  }
}

// How far ahead NibbleLineRows prefetches a row's scales and biases: two calls of four rows, about
// 2.3 KB of codes of a 576-wide row (over 200 ns at one core's share of the bandwidth).
constexpr size_t kSideRowsAhead = 8;

// kRows consecutive rows for kTile activation rows (NibbleLineOrder, `padded` floats each);
// group_sums as in NibbleRowTile. Four rows of one activation row (decode) are reduced together.
// x_doubled: HalfLinePairOrder of the last line when it holds at most 64 columns and kRows is even
// (its rows then go in pairs through NibbleHalfLinePair), else null.
template <size_t kRows, size_t kTile>
HWY_INLINE void NibbleLineRows(const NibbleRowsShape& nibbles, size_t row, size_t columns, size_t padded,
                               const float* HWY_RESTRICT x, const double* HWY_RESTRICT group_sums,
                               float* HWY_RESTRICT out, size_t out_stride,
                               const float* HWY_RESTRICT x_doubled = nullptr) {
  const size_t group_size = nibbles.group_size;
  const size_t groups = columns / group_size;
  const size_t row_bytes = columns / 2;
  // Lane k holds codes 8 k .. 8 k + 7 of its line: group 8 k / group_size of the line's first.
  const size_t groups_per_line = 128 / group_size;
  const __m512i group_of_lane = _mm512_set_epi32(
      static_cast<int>(120 / group_size), static_cast<int>(112 / group_size), static_cast<int>(104 / group_size),
      static_cast<int>(96 / group_size), static_cast<int>(88 / group_size), static_cast<int>(80 / group_size),
      static_cast<int>(72 / group_size), static_cast<int>(64 / group_size), static_cast<int>(56 / group_size),
      static_cast<int>(48 / group_size), static_cast<int>(40 / group_size), static_cast<int>(32 / group_size),
      static_cast<int>(24 / group_size), static_cast<int>(16 / group_size), static_cast<int>(8 / group_size), 0);
  const __mmask16 all_words = 0xffff;
  // The same line kRows rows on (the next call's rows), at least 1 KiB ahead.
  const size_t prefetch = std::max<size_t>(1024, kRows * row_bytes);
  const __mmask16 line_scales = static_cast<__mmask16>((1u << groups_per_line) - 1);
  // The scales and biases kSideRowsAhead rows on: the codes' prefetch does not cover them, and
  // without it the first scale load and the biases of the offsets below each missed the cache
  // (perf, SmolLM2's 576-wide MLX rows: a fifth of the product's samples waited in the offsets).
  const size_t side_bytes = kRows * groups * sizeof(float);
  const size_t side_ahead = (row + kSideRowsAhead) * groups * sizeof(float);
  PrefetchRange(nibbles.scales, side_ahead, side_bytes);
  if (nibbles.biases != nullptr) PrefetchRange(nibbles.biases, side_ahead, side_bytes);
  __m512 totals[kRows][kTile];
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t t = 0; t < kTile; ++t) totals[r][t] = _mm512_setzero_ps();
  }
  size_t line = 0, first_group = 0;
  for (; line + 128 <= columns; line += 128, first_group += groups_per_line) {
    for (size_t r = 0; r < kRows; ++r) {
      NibbleLine<kTile>(nibbles.packed + (row + r) * row_bytes + line / 2, prefetch, all_words,
                        nibbles.scales + (row + r) * groups + first_group, line_scales, group_of_lane, x + line,
                        padded, totals[r]);
    }
  }
  if (line < columns) {
    // A last, partial line (576 columns: 4.5 lines) reads only its own words and scales; the
    // missing lanes are code 0 times zero activations.
    const __mmask16 words = static_cast<__mmask16>((1u << ((columns - line) / 8)) - 1);
    const __mmask16 scales = static_cast<__mmask16>((1u << (groups - first_group)) - 1);
    bool paired = false;
    if constexpr (kRows % 2 == 0 && kTile == 1) {
      if (x_doubled != nullptr) {
        paired = true;
        for (size_t r = 0; r < kRows; r += 2) {
          NibbleHalfLinePair(nibbles.packed + (row + r) * row_bytes + line / 2,
                             nibbles.packed + (row + r + 1) * row_bytes + line / 2, prefetch,
                             static_cast<__mmask8>(words), nibbles.scales + (row + r) * groups + first_group,
                             nibbles.scales + (row + r + 1) * groups + first_group, scales, group_of_lane, x_doubled,
                             totals[r][0], totals[r + 1][0]);
        }
      }
    }
    for (size_t r = 0; r < kRows && !paired; ++r) {
      NibbleLine<kTile>(nibbles.packed + (row + r) * row_bytes + line / 2, prefetch, words,
                        nibbles.scales + (row + r) * groups + first_group, scales, group_of_lane, x + line, padded,
                        totals[r]);
    }
  }
  if constexpr (kRows == 4 && kTile == 1) {
    const __m512 row_totals[4] = {totals[0][0], totals[1][0], totals[2][0], totals[3][0]};
    const __m256d sums = _mm256_add_pd(_mm256_cvtps_pd(SumOfFourVectors(row_totals)),
                                       NibbleOffsetsOfFourRows(nibbles, row, groups, group_sums));
    _mm_storeu_ps(out, _mm256_cvtpd_ps(sums));
  } else {
    for (size_t r = 0; r < kRows; ++r) {
      double offsets[kTile] = {};
      NibbleOffsets<kTile>(nibbles, row + r, groups, group_sums, offsets);
      for (size_t t = 0; t < kTile; ++t) {
        out[r + t * out_stride] =
            static_cast<float>(static_cast<double>(_mm512_reduce_add_ps(totals[r][t])) + offsets[t]);
      }
    }
  }
}
#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3

HWY_INLINE bool NibbleRowsApply(size_t batch, size_t group_size) {
  return batch <= 4 && group_size % (2 * hn::Lanes(hn::ScalableTag<float>())) == 0;
}

// Rows [begin, end) for batch <= 4 (NibbleRowsApply).
HWY_INLINE void NibbleRows(const NibbleRowsShape& nibbles, const RowProductShape& shape, size_t begin, size_t end) {
  const size_t lanes = hn::Lanes(hn::ScalableTag<float>());
  const size_t columns = shape.length;
  const size_t groups = columns / nibbles.group_size;
  // Each group's sum in column order, all groups of a row advanced together: one chain of dependent
  // double adds per group was ~2,300 cycles for a 576-wide row, paid by every thread of every call.
  auto group_sums = hwy::AllocateAligned<double>(shape.batch * groups);
  for (size_t t = 0; t < shape.batch; ++t) {
    const float* x = shape.x + t * shape.x_stride;
    double* sums = group_sums.get() + t * groups;
    std::fill(sums, sums + groups, 0.0);
    for (size_t c = 0; c < nibbles.group_size; ++c) {
      for (size_t g = 0; g < groups; ++g) sums[g] += x[g * nibbles.group_size + c];
    }
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (NibbleLinesApply(nibbles.group_size)) {
    const size_t padded = (columns + 127) / 128 * 128;
    auto ordered = hwy::AllocateAligned<float>(shape.batch * padded);
    NibbleLineOrder(shape.x, shape.x_stride, shape.batch, columns, padded, ordered.get());
    const float* x = ordered.get();
    const double* sums = group_sums.get();
    size_t row = begin;
    if (shape.batch == 1) {
      // A last line of at most 64 columns goes two rows to a register.
      HWY_ALIGN float x_doubled[128];
      const bool half_line = padded - columns >= 64;
      if (half_line) HalfLinePairOrder(x + padded - 128, x_doubled);
      for (; row + 4 <= end; row += 4) {
        NibbleLineRows<4, 1>(nibbles, row, columns, padded, x, sums, shape.y + row, shape.rows,
                             half_line ? x_doubled : nullptr);
      }
    }
    for (; row < end; ++row) {
      float* out = shape.y + row;
      switch (shape.batch) {
        case 4: NibbleLineRows<1, 4>(nibbles, row, columns, padded, x, sums, out, shape.rows); break;
        case 3: NibbleLineRows<1, 3>(nibbles, row, columns, padded, x, sums, out, shape.rows); break;
        case 2: NibbleLineRows<1, 2>(nibbles, row, columns, padded, x, sums, out, shape.rows); break;
        default: NibbleLineRows<1, 1>(nibbles, row, columns, padded, x, sums, out, shape.rows); break;
      }
    }
    return;
  }
#endif
  auto reordered = hwy::AllocateAligned<float>(shape.batch * columns);
  for (size_t t = 0; t < shape.batch; ++t) {
    const float* x = shape.x + t * shape.x_stride;
    float* to = reordered.get() + t * columns;
    for (size_t run = 0; run < columns; run += 2 * lanes) {
      for (size_t k = 0; k < lanes; ++k) {
        to[run + k] = x[run + 2 * k];
        to[run + lanes + k] = x[run + 2 * k + 1];
      }
    }
  }
  for (size_t row = begin; row < end; ++row) {
    float* out = shape.y + row;
    switch (shape.batch) {
      case 4: NibbleRowTile<4>(nibbles, row, columns, reordered.get(), group_sums.get(), out, shape.rows); break;
      case 3: NibbleRowTile<3>(nibbles, row, columns, reordered.get(), group_sums.get(), out, shape.rows); break;
      case 2: NibbleRowTile<2>(nibbles, row, columns, reordered.get(), group_sums.get(), out, shape.rows); break;
      default: NibbleRowTile<1>(nibbles, row, columns, reordered.get(), group_sums.get(), out, shape.rows); break;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#endif  // HLWQ_OPS_CPU_ROW_PRODUCT_INL_H_
