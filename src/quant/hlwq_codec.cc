// HLWQ codec: per-row SIMD kernels (dynamic dispatch; signs, norm, Hadamard butterflies, grid code
// search and packing fused per block, no allocation per row), the matrix drivers, and the plain
// reference the tests compare against.
#include "quant/hlwq_codec.h"

#include <algorithm>
#include <cmath>
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
  for (size_t width = kPartials / 2; width >= 1; width /= 2) {
    for (size_t j = 0; j < width; ++j) partial[j] += partial[j + width];
  }
  return partial[0];
}

// The block's gain as fp16, or the error when the block has a non-finite weight or a gain above
// the fp16 range (both show as a non-finite sum of squares or an infinite fp16).
HWY_INLINE uint16_t Fp16GainOrThrow(const float* block_values, size_t block, double sum_of_squares,
                                    float gain, int64_t row_index, int64_t first_column) {
  const uint16_t half = float_to_f16(gain);
  if (!std::isfinite(sum_of_squares) || (half & 0x7fffu) >= 0x7c00u) {
    throw_unrepresentable_block({block_values, block}, row_index, first_column, gain);
  }
  return half;
}

void QuantizeRowKernel(const HlwqCodec& codec, const float* HWY_RESTRICT row, uint8_t* HWY_RESTRICT codes_row,
                       uint16_t* HWY_RESTRICT norms_row, int64_t row_index) {
  const BlockTag d;
  const hn::RebindToSigned<BlockTag> di;
  const hn::Rebind<uint8_t, BlockTag> du8;
  const size_t lanes = hn::Lanes(d);
  const HlwqParams& params = codec.params();
  const HlwqRowLayout& layout = codec.layout();
  const CodeSearchGrid& grid = codec.code_search_grid();
  const size_t block = static_cast<size_t>(params.block);
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const float* HWY_RESTRICT signs = codec.padded_signs().empty() ? nullptr : codec.padded_signs().data();
  const float* HWY_RESTRICT centroids = codec.codebook().centroids.data();
  const bool least_squares = params.gain == BlockGain::least_squares;

  const auto grid_low = hn::Set(d, grid.low);
  const auto grid_scale = hn::Set(d, grid.inverse_cell_width);
  const auto last_cell = hn::Set(d, static_cast<float>(grid.cells - 1));
  const auto zero = hn::Zero(d);

  HWY_ALIGN float values[kMaxBlock];
  HWY_ALIGN float padded_block[kMaxBlock];  // the last block's weights and its zero padding
  HWY_ALIGN float decoded[kMaxBlock];       // c[q], for the least-squares gain
  HWY_ALIGN uint8_t codes[kMaxBlock];
  for (int64_t block_index = 0; block_index < layout.blocks; ++block_index) {
    const int64_t first_column = block_index * params.block;
    const size_t valid = static_cast<size_t>(std::min<int64_t>(params.block, layout.columns - first_column));
    const float* HWY_RESTRICT source = row + first_column;
    if (valid < block) {  // the last block: zero padding
      std::copy(source, source + valid, padded_block);
      std::fill(padded_block + valid, padded_block + block, 0.0f);
      source = padded_block;
    }

    // The norm (the signs do not change it), then the signs.
    const double sum_of_squares = FixedOrderDot(source, source, block);
    const float norm = std::max(static_cast<float>(std::sqrt(sum_of_squares)), 1e-10f);
    if (signs != nullptr) {
      for (size_t i = 0; i < block; i += lanes) {
        hn::Store(hn::Mul(hn::LoadU(d, source + i), hn::LoadU(d, signs + first_column + i)), d, values + i);
      }
    } else {
      std::copy(source, source + block, values);
    }

    // z = sqrt(block) H(b / r) = H_unnormalized(b) / r.
    UnnormalizedHadamard(d, values, block);
    const auto inverse_norm = hn::Set(d, 1.0f / norm);
    for (size_t i = 0; i < block; i += lanes) {
      const auto z = hn::Mul(hn::Load(d, values + i), inverse_norm);
      // The same clamp and truncation as grid_nearest_code.
      const auto position = hn::Min(hn::Max(hn::Mul(hn::Sub(z, grid_low), grid_scale), zero), last_cell);
      auto code = hn::GatherIndex(di, grid.first_code.data(), hn::ConvertTo(di, position));
      for (int step = 0; step < grid.refinement_steps; ++step) {
        const auto threshold = hn::GatherIndex(d, grid.thresholds.data(), code);
        code = hn::Sub(code, hn::VecFromMask(di, hn::RebindMask(di, hn::Gt(z, threshold))));
      }
      hn::StoreU(hn::DemoteTo(du8, code), du8, codes + i);
      if (least_squares) {  // keep z and c[q] for the gain
        hn::Store(z, d, values + i);
        hn::Store(hn::GatherIndex(d, centroids, code), d, decoded + i);
      }
    }
    // Least squares in the rotated domain (H orthonormal): g = r <z, c[q]> / ||c[q]||^2.
    const float gain = least_squares ? static_cast<float>(norm * FixedOrderDot(values, decoded, block) /
                                                          FixedOrderDot(decoded, decoded, block))
                                     : norm;
    norms_row[block_index] = Fp16GainOrThrow(source, block, sum_of_squares, gain, row_index, first_column);
    pack_block_codes(params.bits, {codes, block}, {codes_row + block_index * packed_bytes, packed_bytes});
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
  const float* HWY_RESTRICT centroids = codec.codebook().centroids.data();

  HWY_ALIGN float values[kMaxBlock];
  HWY_ALIGN uint8_t codes[kMaxBlock];
  for (int64_t block_index = 0; block_index < layout.blocks; ++block_index) {
    const int64_t first_column = block_index * params.block;
    const size_t valid = static_cast<size_t>(std::min<int64_t>(params.block, layout.columns - first_column));
    unpack_block_codes(params.bits, {codes_row + block_index * packed_bytes, packed_bytes}, {codes, block});
    // b_hat = g s H(c[q] / sqrt(block)) = s H_unnormalized(c[q] * g / block).
    const auto scale = hn::Set(d, f16_to_float(norms_row[block_index]) / static_cast<float>(block));
    for (size_t i = 0; i < block; i += lanes) {
      const auto code = hn::PromoteTo(di, hn::LoadU(du8, codes + i));
      hn::Store(hn::Mul(hn::GatherIndex(d, centroids, code), scale), d, values + i);
    }
    UnnormalizedHadamard(d, values, block);
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
  check(params.codebook == CodebookKind::converged || params.codebook == CodebookKind::polarquant_compat,
        "unknown HLWQ codebook kind ", static_cast<int>(params.codebook));
  check(params.gain == BlockGain::norm || params.gain == BlockGain::least_squares,
        "unknown HLWQ block gain kind ", static_cast<int>(params.gain));
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

void HlwqCodec::quantize_row_checked(std::span<const float> row, std::span<uint8_t> codes_row,
                                     std::span<uint16_t> norms_row, int64_t row_index) const {
  check(row.size() == static_cast<size_t>(layout_.columns), "internal: HLWQ row has ", row.size(),
        " weights, codec expects ", layout_.columns);
  check(codes_row.size() == layout_.code_bytes, "internal: HLWQ code row has ", codes_row.size(),
        " bytes, expected ", layout_.code_bytes);
  check(norms_row.size() == static_cast<size_t>(layout_.blocks), "internal: HLWQ norm row has ",
        norms_row.size(), " values, expected ", layout_.blocks);
  HWY_DYNAMIC_DISPATCH(QuantizeRowKernel)(*this, row.data(), codes_row.data(), norms_row.data(), row_index);
}

void HlwqCodec::quantize_row(std::span<const float> row, std::span<uint8_t> codes_row,
                             std::span<uint16_t> norms_row) const {
  quantize_row_checked(row, codes_row, norms_row, -1);
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
  pool.parallel_for(row_count, [&](size_t begin, size_t end) {
    std::vector<float> row(columns);  // one conversion buffer per range of rows
    for (size_t r = begin; r < end; ++r) {
      convert_to_float(dtype, weights.subspan(r * row_bytes, row_bytes), row);
      quantize_row_checked(row, codes.subspan(r * layout_.code_bytes, layout_.code_bytes),
                           norms.subspan(r * blocks, blocks), static_cast<int64_t>(r));
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
    walsh_hadamard_transform_reference(unit, rotated);
    double dot = 0, energy = 0;
    for (size_t i = 0; i < block; ++i) {
      const double z = std::sqrt(static_cast<double>(block)) * rotated[i];
      const uint8_t code = nearest_code(codebook, static_cast<float>(z));
      codes_unpacked[block_index * block + i] = code;
      if (!scaled_rotated.empty()) scaled_rotated[block_index * block + i] = static_cast<float>(z);
      dot += z * codebook.centroids[code];
      energy += static_cast<double>(codebook.centroids[code]) * codebook.centroids[code];
    }
    gains[block_index] = static_cast<float>(params.gain == BlockGain::least_squares ? norm * dot / energy : norm);
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
    walsh_hadamard_transform_reference(scaled, rotated);
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
