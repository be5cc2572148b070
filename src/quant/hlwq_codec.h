// HLWQ quantization of weight matrices: blocks of `block` input weights -> gain (fp16) + Lloyd-Max
// codes of the Walsh-Hadamard-rotated, unit-variance block (the method, README.md), packed per
// docs/FORMAT.md. The ablation's variants (no rotation, uniform absmax codes) are options of the
// same codec, so they share its storage and the runtime kernel. Pure functions over spans; the
// fast path is SIMD, the reference plain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "quant/code_search_grid.h"
#include "quant/lloyd_max.h"

namespace hlwq {

enum class BlockGain {
  norm,           // the block's L2 norm (the paper)
  least_squares,  // <b, v> / ||v||^2 for the decoded direction v: never a larger block error
};

// The orthogonal map R applied to each block before coding; b_hat = R^T(g / sqrt(d) * c[q]).
enum class Rotation {
  hadamard,  // the Walsh-Hadamard transform (after the random signs, when a seed is set): the paper
  none,      // the identity: the ablation's baselines that code the weights in their own basis
};

// Every variant decodes as b_hat = R^T(g / sqrt(d) * c[q]); they differ in what is coded:
//   Lloyd-Max codebooks: z = sqrt(d) R(b) / r, q = nearest centroid of z, g = r (the paper);
//   CodebookKind::uniform: m = max |z_i|, q = nearest level of z / m, g = r m (absmax).
// So the paper's ablation is (a) none + uniform, (b) hadamard + uniform, (c) none + converged,
// (d) hadamard + converged.
struct HlwqParams {
  int bits = 5;                       // 2..8
  int block = 128;                    // power of two, 32..1024
  CodebookKind codebook = CodebookKind::converged;
  std::optional<uint64_t> sign_seed;  // random +-1 per input column before H when set (hadamard only)
  BlockGain gain = BlockGain::norm;
  Rotation rotation = Rotation::hadamard;
};

// Throws hlwq::Error with a readable message ("HLWQ bits must be 2..8, got 9"; a sign seed with
// rotation none is an error: the signs exist to randomize the Hadamard transform).
void validate(const HlwqParams& params);

struct HlwqRowLayout {
  int64_t columns = 0;    // original row length
  int64_t blocks = 0;     // ceil(columns / block)
  size_t code_bytes = 0;  // blocks * packed_block_bytes(bits, block)
};

// Validates params; throws unless columns > 0.
HlwqRowLayout hlwq_row_layout(int64_t columns, const HlwqParams& params);

// The block for a row of `columns` that pads nothing: `preferred` when it divides the row, else the
// largest power of two from 32 up that does (a 576-wide row gets 64, where 128 would code 640
// values and spend half of its last block on zeros). Rows that no such block divides keep
// `preferred`. `hlwq quantize --block auto` uses it per tensor.
int fitted_block(int64_t columns, int preferred);

// Quantizes matrices of a fixed row length. Holds the codebook, its search grid and the signs;
// immutable after construction, so one codec serves any number of threads. Codes, norms and
// dequantized weights are bit-identical on every SIMD target (the sums have one fixed order).
class HlwqCodec {
 public:
  HlwqCodec(const HlwqParams& params, int64_t columns);

  const HlwqParams& params() const { return params_; }
  const HlwqRowLayout& layout() const { return layout_; }
  const Codebook& codebook() const { return codebook_; }
  const CodeSearchGrid& code_search_grid() const { return grid_; }
  // Sign per column, padded with +1 to blocks * block; empty without sign_seed.
  std::span<const float> padded_signs() const { return padded_signs_; }

  // One row: codes_row has layout().code_bytes bytes, norms_row layout().blocks fp16 values (raw
  // bits). Throws hlwq::Error "non-finite weight at column C" or, when a block's gain does not fit
  // fp16 (rounds above 65504), "weight block at columns A..B has gain G, above the fp16 maximum 65504".
  void quantize_row(std::span<const float> row, std::span<uint8_t> codes_row,
                    std::span<uint16_t> norms_row) const;
  void dequantize_row(std::span<const uint8_t> codes_row, std::span<const uint16_t> norms_row,
                      std::span<float> row) const;

  // Whole matrices (rows x columns, row-major), rows split across the pool. Input rows in F32, F16,
  // BF16 or F64, converted one row at a time (no float copy of the matrix). The output does not
  // depend on the thread count. Errors name the row: "non-finite weight at row R, column C".
  void quantize_matrix(DType dtype, std::span<const std::byte> weights, int64_t rows,
                       std::span<uint8_t> codes, std::span<uint16_t> norms, ThreadPool& pool) const;
  void dequantize_matrix(std::span<const uint8_t> codes, std::span<const uint16_t> norms, int64_t rows,
                         std::span<float> weights, ThreadPool& pool) const;

 private:
  // One row stored as dtype; row_index < 0: a lone row, messages name only the column.
  void quantize_row_checked(DType dtype, std::span<const std::byte> row, std::span<uint8_t> codes_row,
                            std::span<uint16_t> norms_row, int64_t row_index) const;

  HlwqParams params_;
  HlwqRowLayout layout_;
  Codebook codebook_;
  CodeSearchGrid grid_;
  std::vector<float> padded_signs_;
};

// Plain, obviously correct scalar quantization of one row, for tests: double arithmetic, the O(n^2)
// reference Hadamard product, binary-search codes. signs: random_signs(seed, columns) or empty.
// codes_unpacked: blocks * block codes; gains: one per block, before fp16 rounding. When given,
// scaled_rotated (blocks * block) receives the values that were coded: z = sqrt(block) R(s * b / r),
// divided by max |z| of the block for the uniform codebook.
void hlwq_quantize_row_reference(const HlwqParams& params, const Codebook& codebook,
                                 std::span<const float> signs, std::span<const float> row,
                                 std::span<uint8_t> codes_unpacked, std::span<float> gains,
                                 std::span<float> scaled_rotated = {});

// The matching plain dequantization: row = gain * s * R(c[q] / sqrt(block)), padding dropped.
void hlwq_dequantize_row_reference(const HlwqParams& params, const Codebook& codebook,
                                   std::span<const float> signs, std::span<const uint8_t> codes_unpacked,
                                   std::span<const float> gains, std::span<float> row);

}  // namespace hlwq
