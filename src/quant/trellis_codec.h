// Trellis-coded weight matrices: HLWQ's blocks, random-sign Hadamard rotation and per-block fp16
// gain, with each row's rotated unit-variance values coded as one bitshift-trellis walk
// (quant/trellis.h) instead of one Lloyd-Max code a value. Stored layout: docs/FORMAT.md
// ("Trellis codes"). Pure functions over spans; the decoder is random access (value t of a row
// is codebook[the L stored bits that end at bit (t + 1) k of its blocks]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "quant/hlwq_codec.h"
#include "quant/trellis.h"

namespace hlwq {

// What a trellis-coded tensor was coded with. The rotation is always HLWQ's Hadamard transform
// (after the random signs when a seed is set).
struct TrellisFormat {
  int bits = 4;                       // k: stored bits a value, 2..8
  int state_bits = 12;                // L: the trellis has 2^L states, k < L <= 20
  int block = 64;                     // d: power of two, 32..1024; one gain per d values
  std::optional<uint64_t> sign_seed;  // random +-1 per input column before H when set
  BlockGain gain = BlockGain::least_squares;
};

// Throws hlwq::Error with a readable message (bits, state bits, block, gain).
void validate(const TrellisFormat& format);

// One row's storage: head_bytes (the first state's L - k bits that precede value 0's own k bits,
// right-aligned in whole bytes) then `blocks` blocks of block_bytes = d k / 8 bytes each.
struct TrellisRowLayout {
  int64_t columns = 0;     // original row length
  int64_t blocks = 0;      // ceil(columns / d)
  size_t head_bytes = 0;   // ceil((L - k) / 8)
  size_t block_bytes = 0;  // d k / 8
  size_t code_bytes = 0;   // head_bytes + blocks * block_bytes
};

// Validates the format; throws unless columns > 0.
TrellisRowLayout trellis_row_layout(int64_t columns, const TrellisFormat& format);

// The walk of a row's values into its stored bytes (row.size() == layout code_bytes; the walk holds
// blocks * d values), and back. Bit p of a row is bit 7 - p % 8 of byte p / 8 (most significant
// first); the stream (first state, then k bits a step) starts at bit 8 head_bytes - (L - k), and
// the bits before it are zero.
void pack_trellis_walk(const TrellisParams& params, const TrellisWalk& walk, size_t head_bytes,
                       std::span<uint8_t> row);
TrellisWalk unpack_trellis_walk(const TrellisParams& params, std::span<const uint8_t> row, size_t head_bytes,
                                size_t values);

// The state of value t of a row straight from its bytes: the L bits ending at bit
// 8 head_bytes + (t + 1) k, first bit most significant. Plain and bit by bit, for tests.
uint32_t trellis_state_at(const TrellisParams& params, std::span<const uint8_t> row, size_t head_bytes, size_t t);

// Quantizes matrices of a fixed row length with one trellis format. Holds the codebook (shared: its
// 2^L Gaussian quantiles take a while to compute, so one copy serves every tensor of a model) and
// the signs; immutable after construction, so one codec serves any number of threads.
class TrellisCodec {
 public:
  // codebook: trellis_codebook(format.state_bits), or null to compute it here.
  TrellisCodec(const TrellisFormat& format, int64_t columns,
               std::shared_ptr<const std::vector<float>> codebook = nullptr);

  const TrellisFormat& format() const { return format_; }
  TrellisParams trellis_params() const { return {format_.state_bits, format_.bits}; }
  const TrellisRowLayout& layout() const { return layout_; }
  std::span<const float> codebook() const { return *codebook_; }
  const std::shared_ptr<const std::vector<float>>& shared_codebook() const { return codebook_; }
  // Sign per column, padded with +1 to blocks * d; empty without sign_seed.
  std::span<const float> padded_signs() const { return padded_signs_; }

  // One row: codes_row has layout().code_bytes bytes, gains_row layout().blocks fp16 values (raw
  // bits). Throws hlwq::Error "non-finite weight at column C" or, when a gain does not fit fp16,
  // "weight block at columns A..B has gain G, above the fp16 maximum 65504".
  void quantize_row(std::span<const float> row, std::span<uint8_t> codes_row, std::span<uint16_t> gains_row) const;

  // The row in the rotated domain, blocks * d values: value t = gain(block) / sqrt(d) *
  // codebook[state t], so that a product with rotated activations x' = H(s * x) is a plain dot.
  void decode_rotated_row(std::span<const uint8_t> codes_row, std::span<const uint16_t> gains_row,
                          std::span<float> rotated) const;
  // The row of weights: the rotated row taken back through H and the signs, padding dropped.
  void dequantize_row(std::span<const uint8_t> codes_row, std::span<const uint16_t> gains_row,
                      std::span<float> row) const;

  // Whole matrices (rows x columns, row-major, F32/F16/BF16/F64 in), rows split across the pool;
  // the output does not depend on the thread count. Errors name the row.
  void quantize_matrix(DType dtype, std::span<const std::byte> weights, int64_t rows, std::span<uint8_t> codes,
                       std::span<uint16_t> gains, ThreadPool& pool) const;
  void dequantize_matrix(std::span<const uint8_t> codes, std::span<const uint16_t> gains, int64_t rows,
                         std::span<float> weights, ThreadPool& pool) const;

 private:
  void quantize_row_at(std::span<const float> row, std::span<uint8_t> codes_row, std::span<uint16_t> gains_row,
                       int64_t row_index) const;

  TrellisFormat format_;
  TrellisRowLayout layout_;
  std::shared_ptr<const std::vector<float>> codebook_;
  std::vector<float> padded_signs_;
};

// Plain dequantization of one row for tests: the walk unpacked bit by bit, decoded by
// trellis_decode, each block scaled by its gain / sqrt(d), the O(d^2) reference Hadamard product
// in double, the signs; padding dropped.
void trellis_dequantize_row_reference(const TrellisFormat& format, std::span<const float> codebook,
                                      std::span<const float> signs, std::span<const uint8_t> codes_row,
                                      std::span<const uint16_t> gains_row, std::span<float> row);

}  // namespace hlwq
