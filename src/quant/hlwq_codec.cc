// HLWQ codec: per-row SIMD kernels (dynamic dispatch; signs, norm, Hadamard butterflies (unless
// rotation none), absmax scaling (uniform codebook), grid code search and packing fused per block,
// no allocation per row), the matrix drivers, and the plain reference the tests compare against.
#include "quant/hlwq_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "quant/code_packing.h"
#include "quant/hadamard.h"
#include "quant/random_signs.h"

namespace hlwq {
// Throws the error for a block whose sum of squares or gain is not finite in fp16 (defined once,
// below; declared here for every SIMD target's kernel).
[[noreturn]] void throw_unrepresentable_block(std::span<const float> block_values, int64_t row_index,
                                              int64_t first_column, float gain);
}  // namespace hlwq

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/hlwq_codec.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "quant/code_packing-inl.h"
#include "quant/hadamard-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

constexpr size_t kMaxBlock = 1024;
// At most 32 lanes, so every block (>= 32 weights) is a whole number of vectors.
using BlockTag = hn::CappedTag<float, 32>;

// Sum of a[i] * b[i] over a block (size a multiple of 16) in one fixed order on every CPU: the
// products are exact in double (24 x 24 bits), so FMA or not gives the same bits, and sixteen
// partial sums (partial j takes i = j mod 16, in order) plus a fixed pairwise tree leave the
// compiler free to vectorize without reassociating. So norms, codes and gains do not depend on
// the SIMD target.
HWY_INLINE double FixedOrderDot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t size) {
  constexpr size_t kPartials = 16;
  double partial[kPartials] = {};
  for (size_t i = 0; i < size; i += kPartials) {
    for (size_t j = 0; j < kPartials; ++j) partial[j] += static_cast<double>(a[i + j]) * b[i + j];
  }
  // The tree spelled out: a loop over the widths compiles to a chain through memory.
  double half[8], quarter[4];
  for (size_t j = 0; j < 8; ++j) half[j] = partial[j] + partial[j + 8];
  for (size_t j = 0; j < 4; ++j) quarter[j] = half[j] + half[j + 4];
  return (quarter[0] + quarter[2]) + (quarter[1] + quarter[3]);
}

// max |values[i]| over a block (size a multiple of the lanes): exact, so the same on every target.
template <class D>
HWY_INLINE float MaxAbs(D d, const float* HWY_RESTRICT values, size_t size) {
  auto largest = hn::Zero(d);
  for (size_t i = 0; i < size; i += hn::Lanes(d)) largest = hn::Max(largest, hn::Abs(hn::Load(d, values + i)));
  return hn::GetLane(hn::MaxOfLanes(d, largest));
}

// The block's gain as fp16, or the error when it rounds above the fp16 range.
HWY_INLINE uint16_t Fp16GainOrThrow(const float* block_values, size_t block, float gain, int64_t row_index,
                                    int64_t first_column) {
  const uint16_t half = float_to_f16(gain);
  if ((half & 0x7fffu) >= 0x7c00u) {
    throw_unrepresentable_block({block_values, block}, row_index, first_column, gain);
  }
  return half;
}

// f16 bits (in 32-bit lanes) to float with integer operations, bit-identical to f16_to_float on
// every target, infinities and NaN included (Highway's PromoteTo for targets without F16C turns
// them into finite numbers, which would hide a non-finite weight).
template <class D>
HWY_INLINE hn::Vec<D> F16BitsToFloat(D d, hn::Vec<hn::RebindToUnsigned<D>> bits) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const auto sign = hn::ShiftLeft<16>(hn::And(bits, hn::Set(du, 0x8000u)));
  const auto exponent = hn::And(hn::ShiftRight<10>(bits), hn::Set(du, 0x1fu));
  const auto mantissa = hn::And(bits, hn::Set(du, 0x3ffu));
  const auto normal =
      hn::Or(hn::ShiftLeft<23>(hn::Add(exponent, hn::Set(du, 127u - 15u))), hn::ShiftLeft<13>(mantissa));
  const auto infinite_or_nan = hn::Or(hn::Set(du, 0x7f800000u), hn::ShiftLeft<13>(mantissa));
  // mantissa * 2^-24, exact (at most 10 significant bits).
  const auto subnormal = hn::BitCast(du, hn::Mul(hn::ConvertTo(d, hn::BitCast(di, mantissa)), hn::Set(d, 0x1p-24f)));
  auto magnitude = hn::IfThenElse(hn::Eq(exponent, hn::Zero(du)), subnormal, normal);
  magnitude = hn::IfThenElse(hn::Eq(exponent, hn::Set(du, 0x1fu)), infinite_or_nan, magnitude);
  return hn::BitCast(d, hn::Or(sign, magnitude));
}

// `count` weights stored as `dtype` (F32, F16, BF16 or F64) to float; conversion fused into the
// block loop so a row is read once. Vector loads make no alignment assumption.
template <class D>
HWY_INLINE void LoadAsFloat(D d, DType dtype, const std::byte* HWY_RESTRICT source, size_t count,
                            float* HWY_RESTRICT destination) {
  const size_t lanes = hn::Lanes(d);
  const hn::Rebind<uint16_t, D> du16;
  const hn::RebindToUnsigned<D> du32;
  size_t i = 0;
  switch (dtype) {
    case DType::F32:
      std::memcpy(destination, source, count * sizeof(float));
      return;
    case DType::BF16:
      for (; i + lanes <= count; i += lanes) {
        const auto bits = hn::LoadU(du16, reinterpret_cast<const uint16_t*>(source) + i);
        hn::StoreU(hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, bits))), d, destination + i);
      }
      break;
    case DType::F16:
      for (; i + lanes <= count; i += lanes) {
        const auto bits = hn::LoadU(du16, reinterpret_cast<const uint16_t*>(source) + i);
        hn::StoreU(F16BitsToFloat(d, hn::PromoteTo(du32, bits)), d, destination + i);
      }
      break;
    default:
      break;
  }
  // The remainder (and all of F64) element by element.
  if (i < count) {
    const size_t size = dtype_size(dtype);
    convert_to_float(dtype, {source + i * size, (count - i) * size}, {destination + i, count - i});
  }
}

// Holds a codebook's centroids zero-padded to whole vectors, so that small codebooks can be
// looked up with lane permutations.
struct CentroidTable {
  HWY_ALIGN float values[256 + 64];
  size_t levels;
  explicit CentroidTable(const std::vector<float>& centroids) : levels(centroids.size()) {
    std::fill(std::copy(centroids.begin(), centroids.end(), values), values + 256 + 64, 0.0f);
  }
};

// c[code] for every lane: one lane permutation when the codebook fits in a vector, two and a
// blend when it fits in two (no memory access per weight), a gather otherwise.
template <class D>
HWY_INLINE hn::Vec<D> LookupCentroids(D d, const CentroidTable& table, hn::Vec<hn::RebindToSigned<D>> code) {
  const hn::RebindToSigned<D> di;
  const size_t lanes = hn::Lanes(d);
  if (table.levels <= lanes) {
    return hn::TableLookupLanes(hn::Load(d, table.values), hn::IndicesFromVec(d, code));
  }
  if (table.levels <= 2 * lanes) {
    const auto lane = hn::IndicesFromVec(d, hn::And(code, hn::Set(di, static_cast<int32_t>(lanes - 1))));
    const auto in_upper = hn::RebindMask(d, hn::Gt(code, hn::Set(di, static_cast<int32_t>(lanes - 1))));
    return hn::IfThenElse(in_upper, hn::TableLookupLanes(hn::Load(d, table.values + lanes), lane),
                          hn::TableLookupLanes(hn::Load(d, table.values), lane));
  }
  return hn::GatherIndex(d, table.values, code);
}

// Codes of the lanes of z (cell = their grid cells) as grid_nearest_code computes them: one 64-bit
// gather per lane brings the cell's code and threshold together (half the loads of two 32-bit
// gathers, the costliest step of the kernel), then one comparison.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> NearestCodes(D d, hn::Vec<D> z, hn::Vec<hn::RebindToSigned<D>> cell,
                                                       const uint64_t* HWY_RESTRICT entries) {
  const hn::RebindToSigned<D> di;
#if HWY_TARGET != HWY_SCALAR  // the single-lane target has no halves to split
  {
    const hn::RebindToUnsigned<D> du32;
    const hn::Half<decltype(di)> di_half;
    const hn::Repartition<int64_t, decltype(di)> di64;
    const hn::RebindToUnsigned<decltype(di64)> du64;
    const auto lower =
        hn::BitCast(du32, hn::GatherIndex(du64, entries, hn::PromoteTo(di64, hn::LowerHalf(di_half, cell))));
    const auto upper =
        hn::BitCast(du32, hn::GatherIndex(du64, entries, hn::PromoteTo(di64, hn::UpperHalf(di_half, cell))));
    const auto threshold = hn::BitCast(d, hn::ConcatEven(du32, upper, lower));
    const auto first = hn::BitCast(di, hn::ConcatOdd(du32, upper, lower));
    return hn::Sub(first, hn::VecFromMask(di, hn::RebindMask(di, hn::Gt(z, threshold))));
  }
#else
  {
    (void)d;
    const uint64_t entry = entries[hn::GetLane(cell)];
    const uint32_t threshold_bits = static_cast<uint32_t>(entry);
    float threshold;
    std::memcpy(&threshold, &threshold_bits, sizeof threshold);
    return hn::Set(di, static_cast<int32_t>((entry >> 32) + (hn::GetLane(z) > threshold ? 1 : 0)));
  }
#endif
}

void QuantizeRowKernel(const HlwqCodec& codec, DType dtype, const std::byte* HWY_RESTRICT row,
                       uint8_t* HWY_RESTRICT codes_row, uint16_t* HWY_RESTRICT norms_row, int64_t row_index) {
  const BlockTag d;
  const hn::RebindToSigned<BlockTag> di;
  const hn::Rebind<uint8_t, BlockTag> du8;
  const size_t lanes = hn::Lanes(d);
  const HlwqParams& params = codec.params();
  const HlwqRowLayout& layout = codec.layout();
  const CodeSearchGrid& grid = codec.code_search_grid();
  const size_t block = static_cast<size_t>(params.block);
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const size_t element_size = dtype_size(dtype);
  const float* HWY_RESTRICT signs = codec.padded_signs().empty() ? nullptr : codec.padded_signs().data();
  const CentroidTable centroids(codec.codebook().centroids);
  const bool least_squares = params.gain == BlockGain::least_squares;
  const bool rotate = params.rotation == Rotation::hadamard;
  const bool absmax = params.codebook == CodebookKind::uniform;
  const float root_block = static_cast<float>(std::sqrt(static_cast<double>(block)));

  const auto grid_low = hn::Set(d, grid.low);
  const auto grid_scale = hn::Set(d, grid.inverse_cell_width);
  const auto last_cell = hn::Set(d, static_cast<float>(grid.cells - 1));
  const auto zero = hn::Zero(d);

  HWY_ALIGN float weights[kMaxBlock];  // the block as float, zero-padded
  HWY_ALIGN float values[kMaxBlock];   // signed, then rotated
  HWY_ALIGN float decoded[kMaxBlock];  // c[q], for the least-squares gain
  HWY_ALIGN uint8_t codes[kMaxBlock];
  for (int64_t block_index = 0; block_index < layout.blocks; ++block_index) {
    const int64_t first_column = block_index * params.block;
    const size_t valid = static_cast<size_t>(std::min<int64_t>(params.block, layout.columns - first_column));
    LoadAsFloat(d, dtype, row + static_cast<size_t>(first_column) * element_size, valid, weights);
    std::fill(weights + valid, weights + block, 0.0f);

    // The norm (the signs do not change it), then the signs.
    const double sum_of_squares = FixedOrderDot(weights, weights, block);
    // Non-finite weights, or a norm so large that the rotation could overflow float (no such
    // gain fits fp16 anyway), stop here, before any NaN could reach the code search.
    if (!(sum_of_squares <= 1e60)) {
      throw_unrepresentable_block({weights, block}, row_index, first_column,
                                  static_cast<float>(std::sqrt(sum_of_squares)));
    }
    const float norm = std::max(static_cast<float>(std::sqrt(sum_of_squares)), 1e-10f);
    if (signs != nullptr) {
      for (size_t i = 0; i < block; i += lanes) {
        hn::Store(hn::Mul(hn::Load(d, weights + i), hn::LoadU(d, signs + first_column + i)), d, values + i);
      }
    } else {
      std::copy(weights, weights + block, values);
    }

    // v = sqrt(block) R(b): H_unnormalized(b), or b itself without rotation. What is coded is
    // w = v * to_coded, and `gain` is the fp16 gain for a decoded direction equal to w:
    //   Lloyd-Max: w = z = v / r (times sqrt(block) without rotation), gain r;
    //   uniform:   w = z / max|z| = v / max|v|, gain r max|z| = max|v| (times sqrt(block) without
    //              rotation), which decodes to gain / sqrt(block) * L[q] ~ R(b).
    if (rotate) UnnormalizedHadamard(d, values, block);
    float to_coded, gain;
    if (absmax) {
      const float largest = MaxAbs(d, values, block);
      to_coded = largest > 0.0f ? 1.0f / largest : 0.0f;  // an all-zero block codes zeros, gain 0
      gain = rotate ? largest : largest * root_block;
    } else {
      to_coded = rotate ? 1.0f / norm : root_block / norm;
      gain = norm;
    }
    const auto to_coded_vector = hn::Set(d, to_coded);
    for (size_t i = 0; i < block; i += lanes) {
      const auto z = hn::Mul(hn::Load(d, values + i), to_coded_vector);
      // The same clamp and truncation as grid_nearest_code.
      const auto position = hn::Min(hn::Max(hn::Mul(hn::Sub(z, grid_low), grid_scale), zero), last_cell);
      const auto code = NearestCodes(d, z, hn::ConvertTo(di, position), grid.cell_entries.data());
      hn::StoreU(hn::DemoteTo(du8, code), du8, codes + i);
      if (least_squares) {  // keep z and c[q] for the gain
        hn::Store(z, d, values + i);
        hn::Store(LookupCentroids(d, centroids, code), d, decoded + i);
      }
    }
    // Least squares in the rotated domain (R orthonormal): g <w, c[q]> / ||c[q]||^2. Only the
    // uniform codebook has a zero level, so only there can c[q] be all zeros (a zero block).
    if (least_squares) {
      const double energy = FixedOrderDot(decoded, decoded, block);
      gain = energy > 0 ? static_cast<float>(gain * FixedOrderDot(values, decoded, block) / energy) : 0.0f;
    }
    norms_row[block_index] = Fp16GainOrThrow(weights, block, gain, row_index, first_column);
    PackBlockCodes(params.bits, codes, block, codes_row + block_index * packed_bytes);
  }
}

void DequantizeRowKernel(const HlwqCodec& codec, const uint8_t* HWY_RESTRICT codes_row,
                         const uint16_t* HWY_RESTRICT norms_row, float* HWY_RESTRICT row) {
  const BlockTag d;
  const hn::RebindToSigned<BlockTag> di;
  const hn::Rebind<uint8_t, BlockTag> du8;
  const size_t lanes = hn::Lanes(d);
  const HlwqParams& params = codec.params();
  const HlwqRowLayout& layout = codec.layout();
  const size_t block = static_cast<size_t>(params.block);
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const float* HWY_RESTRICT signs = codec.padded_signs().empty() ? nullptr : codec.padded_signs().data();
  const CentroidTable centroids(codec.codebook().centroids);
  const bool rotate = params.rotation == Rotation::hadamard;
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));

  HWY_ALIGN float values[kMaxBlock];
  HWY_ALIGN uint8_t codes[kMaxBlock];
  for (int64_t block_index = 0; block_index < layout.blocks; ++block_index) {
    const int64_t first_column = block_index * params.block;
    const size_t valid = static_cast<size_t>(std::min<int64_t>(params.block, layout.columns - first_column));
    UnpackBlockCodes(params.bits, codes_row + block_index * packed_bytes, block, codes);
    // b_hat = g s H(c[q] / sqrt(block)) = s H_unnormalized(c[q] * g / block); without rotation
    // b_hat = c[q] * g / sqrt(block) (as the runtime kernel scales it).
    const float gain = f16_to_float(norms_row[block_index]);
    const auto scale = hn::Set(d, rotate ? gain / static_cast<float>(block) : gain * inverse_root);
    for (size_t i = 0; i < block; i += lanes) {
      const auto code = hn::PromoteTo(di, hn::LoadU(du8, codes + i));
      hn::Store(hn::Mul(LookupCentroids(d, centroids, code), scale), d, values + i);
    }
    if (rotate) UnnormalizedHadamard(d, values, block);
    if (signs != nullptr) {
      for (size_t i = 0; i < block; i += lanes) {
        hn::Store(hn::Mul(hn::Load(d, values + i), hn::LoadU(d, signs + first_column + i)), d, values + i);
      }
    }
    std::copy(values, values + valid, row + first_column);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(QuantizeRowKernel);
HWY_EXPORT(DequantizeRowKernel);

void throw_unrepresentable_block(std::span<const float> block_values, int64_t row_index,
                                 int64_t first_column, float gain) {
  const std::string row_part = row_index >= 0 ? concat("row ", row_index, ", ") : std::string();
  for (size_t i = 0; i < block_values.size(); ++i) {
    if (!std::isfinite(block_values[i])) {
      fail("non-finite weight at ", row_part, "column ", first_column + static_cast<int64_t>(i));
    }
  }
  fail("weight block at ", row_part, "columns ", first_column, "..",
       first_column + static_cast<int64_t>(block_values.size()) - 1, " has gain ", gain,
       ", above the fp16 maximum 65504");
}

void validate(const HlwqParams& params) {
  check(params.bits >= 2 && params.bits <= 8, "HLWQ bits must be 2..8, got ", params.bits);
  check(params.block >= 32 && params.block <= 1024 && is_power_of_two(static_cast<size_t>(params.block)),
        "HLWQ block size must be a power of two in 32..1024, got ", params.block);
  check(params.codebook == CodebookKind::converged || params.codebook == CodebookKind::polarquant_compat ||
            params.codebook == CodebookKind::uniform,
        "unknown HLWQ codebook kind ", static_cast<int>(params.codebook));
  check(params.gain == BlockGain::norm || params.gain == BlockGain::least_squares,
        "unknown HLWQ block gain kind ", static_cast<int>(params.gain));
  check(params.rotation == Rotation::hadamard || params.rotation == Rotation::none, "unknown HLWQ rotation kind ",
        static_cast<int>(params.rotation));
  check(!(params.sign_seed && params.rotation == Rotation::none),
        "HLWQ random signs need the Hadamard rotation (a sign seed was given with rotation none)");
}

HlwqRowLayout hlwq_row_layout(int64_t columns, const HlwqParams& params) {
  validate(params);
  check(columns > 0, "HLWQ row length must be positive, got ", columns);
  HlwqRowLayout layout;
  layout.columns = columns;
  layout.blocks = (columns + params.block - 1) / params.block;
  layout.code_bytes = static_cast<size_t>(layout.blocks) * packed_block_bytes(params.bits, params.block);
  return layout;
}

int fitted_block(int64_t columns, int preferred) {
  check(columns > 0, "HLWQ row length must be positive, got ", columns);
  for (int block = preferred; block >= 32; block /= 2) {
    if (columns % block == 0) return block;
  }
  return preferred;
}

HlwqCodec::HlwqCodec(const HlwqParams& params, int64_t columns)
    : params_(params),
      layout_(hlwq_row_layout(columns, params)),
      codebook_(lloyd_max_codebook(params.bits, params.codebook)),
      grid_(make_code_search_grid(codebook_)) {
  if (params.sign_seed) {
    padded_signs_ = random_signs(*params.sign_seed, static_cast<size_t>(columns));
    padded_signs_.resize(static_cast<size_t>(layout_.blocks * params.block), 1.0f);
  }
}

void HlwqCodec::quantize_row_checked(DType dtype, std::span<const std::byte> row, std::span<uint8_t> codes_row,
                                     std::span<uint16_t> norms_row, int64_t row_index) const {
  check(row.size() == static_cast<size_t>(layout_.columns) * dtype_size(dtype), "internal: HLWQ row has ",
        row.size(), " bytes, codec expects ", layout_.columns, " ", dtype_name(dtype), " weights");
  check(codes_row.size() == layout_.code_bytes, "internal: HLWQ code row has ", codes_row.size(),
        " bytes, expected ", layout_.code_bytes);
  check(norms_row.size() == static_cast<size_t>(layout_.blocks), "internal: HLWQ norm row has ",
        norms_row.size(), " values, expected ", layout_.blocks);
  HWY_DYNAMIC_DISPATCH(QuantizeRowKernel)(*this, dtype, row.data(), codes_row.data(), norms_row.data(), row_index);
}

void HlwqCodec::quantize_row(std::span<const float> row, std::span<uint8_t> codes_row,
                             std::span<uint16_t> norms_row) const {
  quantize_row_checked(DType::F32, std::as_bytes(row), codes_row, norms_row, -1);
}

void HlwqCodec::dequantize_row(std::span<const uint8_t> codes_row, std::span<const uint16_t> norms_row,
                               std::span<float> row) const {
  check(row.size() == static_cast<size_t>(layout_.columns), "internal: HLWQ row has ", row.size(),
        " weights, codec expects ", layout_.columns);
  check(codes_row.size() == layout_.code_bytes, "internal: HLWQ code row has ", codes_row.size(),
        " bytes, expected ", layout_.code_bytes);
  check(norms_row.size() == static_cast<size_t>(layout_.blocks), "internal: HLWQ norm row has ",
        norms_row.size(), " values, expected ", layout_.blocks);
  HWY_DYNAMIC_DISPATCH(DequantizeRowKernel)(*this, codes_row.data(), norms_row.data(), row.data());
}

void HlwqCodec::quantize_matrix(DType dtype, std::span<const std::byte> weights, int64_t rows,
                                std::span<uint8_t> codes, std::span<uint16_t> norms, ThreadPool& pool) const {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F64,
        "cannot quantize ", dtype_name(dtype), " weights with HLWQ (need F32, F16, BF16 or F64)");
  check(rows >= 0, "internal: negative row count ", rows);
  const size_t columns = static_cast<size_t>(layout_.columns);
  const size_t row_bytes = columns * dtype_size(dtype);
  const size_t row_count = static_cast<size_t>(rows);
  check(weights.size() == row_count * row_bytes, "internal: HLWQ input has ", weights.size(),
        " bytes, expected ", row_count * row_bytes);
  check(codes.size() == row_count * layout_.code_bytes, "internal: HLWQ codes have ", codes.size(),
        " bytes, expected ", row_count * layout_.code_bytes);
  check(norms.size() == row_count * static_cast<size_t>(layout_.blocks), "internal: HLWQ norms have ",
        norms.size(), " values, expected ", row_count * static_cast<size_t>(layout_.blocks));
  const size_t blocks = static_cast<size_t>(layout_.blocks);
  // Rows are converted to float block by block inside the kernel: no copy of the matrix.
  pool.parallel_for(row_count, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      quantize_row_checked(dtype, weights.subspan(r * row_bytes, row_bytes),
                           codes.subspan(r * layout_.code_bytes, layout_.code_bytes), norms.subspan(r * blocks, blocks),
                           static_cast<int64_t>(r));
    }
  });
}

void HlwqCodec::dequantize_matrix(std::span<const uint8_t> codes, std::span<const uint16_t> norms, int64_t rows,
                                  std::span<float> weights, ThreadPool& pool) const {
  check(rows >= 0, "internal: negative row count ", rows);
  const size_t columns = static_cast<size_t>(layout_.columns);
  const size_t row_count = static_cast<size_t>(rows);
  const size_t blocks = static_cast<size_t>(layout_.blocks);
  check(weights.size() == row_count * columns, "internal: HLWQ output has ", weights.size(),
        " weights, expected ", row_count * columns);
  check(codes.size() == row_count * layout_.code_bytes, "internal: HLWQ codes have ", codes.size(),
        " bytes, expected ", row_count * layout_.code_bytes);
  check(norms.size() == row_count * blocks, "internal: HLWQ norms have ", norms.size(), " values, expected ",
        row_count * blocks);
  pool.parallel_for(row_count, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      dequantize_row(codes.subspan(r * layout_.code_bytes, layout_.code_bytes), norms.subspan(r * blocks, blocks),
                     weights.subspan(r * columns, columns));
    }
  });
}

namespace {

void check_reference_sizes(const HlwqParams& params, const Codebook& codebook, std::span<const float> signs,
                           size_t columns, size_t codes, size_t gains) {
  const HlwqRowLayout layout = hlwq_row_layout(static_cast<int64_t>(columns), params);
  check(codebook.bits == params.bits, "internal: codebook has ", codebook.bits, " bits, params ", params.bits);
  check(signs.empty() || signs.size() == columns, "internal: ", signs.size(), " signs for ", columns, " columns");
  check(codes == static_cast<size_t>(layout.blocks * params.block), "internal: reference needs ",
        layout.blocks * params.block, " codes, got ", codes);
  check(gains == static_cast<size_t>(layout.blocks), "internal: reference needs ", layout.blocks,
        " gains, got ", gains);
}

}  // namespace

void hlwq_quantize_row_reference(const HlwqParams& params, const Codebook& codebook, std::span<const float> signs,
                                 std::span<const float> row, std::span<uint8_t> codes_unpacked,
                                 std::span<float> gains, std::span<float> scaled_rotated) {
  check_reference_sizes(params, codebook, signs, row.size(), codes_unpacked.size(), gains.size());
  check(scaled_rotated.empty() || scaled_rotated.size() == codes_unpacked.size(),
        "internal: reference z output has the wrong size");
  const size_t block = static_cast<size_t>(params.block);
  std::vector<double> signed_block(block);
  std::vector<float> unit(block), rotated(block);
  for (size_t block_index = 0; block_index < gains.size(); ++block_index) {
    double sum_of_squares = 0;
    for (size_t i = 0; i < block; ++i) {
      const size_t column = block_index * block + i;
      const double weight = column < row.size() ? row[column] : 0.0;
      const double sign = column < signs.size() ? signs[column] : 1.0;
      signed_block[i] = sign * weight;
      sum_of_squares += weight * weight;
    }
    const double norm = std::max(std::sqrt(sum_of_squares), 1e-10);
    for (size_t i = 0; i < block; ++i) unit[i] = static_cast<float>(signed_block[i] / norm);
    if (params.rotation == Rotation::hadamard) {
      walsh_hadamard_transform_reference(unit, rotated);
    } else {
      rotated = unit;
    }
    std::vector<double> z(block);
    double largest = 0;
    for (size_t i = 0; i < block; ++i) {
      z[i] = std::sqrt(static_cast<double>(block)) * rotated[i];
      largest = std::max(largest, std::abs(z[i]));
    }
    // Absmax: code z / max|z| on the uniform levels, with gain r max|z|.
    const bool absmax = params.codebook == CodebookKind::uniform;
    const double scale = absmax ? largest : 1.0;
    double dot = 0, energy = 0;
    for (size_t i = 0; i < block; ++i) {
      const double coded = scale > 0 ? z[i] / scale : 0.0;
      const uint8_t code = nearest_code(codebook, static_cast<float>(coded));
      codes_unpacked[block_index * block + i] = code;
      if (!scaled_rotated.empty()) scaled_rotated[block_index * block + i] = static_cast<float>(coded);
      dot += coded * codebook.centroids[code];
      energy += static_cast<double>(codebook.centroids[code]) * codebook.centroids[code];
    }
    const double gain = norm * scale;
    const bool least_squares = params.gain == BlockGain::least_squares;
    gains[block_index] = static_cast<float>(least_squares ? (energy > 0 ? gain * dot / energy : 0.0) : gain);
  }
}

void hlwq_dequantize_row_reference(const HlwqParams& params, const Codebook& codebook, std::span<const float> signs,
                                   std::span<const uint8_t> codes_unpacked, std::span<const float> gains,
                                   std::span<float> row) {
  check_reference_sizes(params, codebook, signs, row.size(), codes_unpacked.size(), gains.size());
  const size_t block = static_cast<size_t>(params.block);
  std::vector<float> scaled(block), rotated(block);
  for (size_t block_index = 0; block_index < gains.size(); ++block_index) {
    for (size_t i = 0; i < block; ++i) {
      scaled[i] = static_cast<float>(codebook.centroids[codes_unpacked[block_index * block + i]] /
                                     std::sqrt(static_cast<double>(block)));
    }
    if (params.rotation == Rotation::hadamard) {
      walsh_hadamard_transform_reference(scaled, rotated);
    } else {
      rotated = scaled;
    }
    for (size_t i = 0; i < block; ++i) {
      const size_t column = block_index * block + i;
      if (column >= row.size()) break;
      const double sign = column < signs.size() ? signs[column] : 1.0;
      row[column] = static_cast<float>(static_cast<double>(gains[block_index]) * sign * rotated[i]);
    }
  }
}

}  // namespace hlwq
#endif  // HWY_ONCE
