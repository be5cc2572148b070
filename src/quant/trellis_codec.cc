// Trellis-coded weight matrices (quant/trellis_codec.h): row quantization (rotation, one Viterbi
// walk a row, gains), the bit layout, the random-access decoder and the plain reference.
#include "quant/trellis_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "quant/hadamard.h"
#include "quant/random_signs.h"

namespace hlwq {

void validate(const TrellisFormat& format) {
  check(format.bits >= 2 && format.bits <= 8, "trellis bits per value must be 2..8, got ", format.bits);
  check_trellis_params({format.state_bits, format.bits});
  check(format.block >= 32 && format.block <= 1024 && is_power_of_two(static_cast<size_t>(format.block)),
        "trellis block size must be a power of two in 32..1024, got ", format.block);
  check(format.gain == BlockGain::norm || format.gain == BlockGain::least_squares, "unknown trellis block gain kind ",
        static_cast<int>(format.gain));
}

TrellisRowLayout trellis_row_layout(int64_t columns, const TrellisFormat& format) {
  validate(format);
  check(columns > 0, "trellis row length must be positive, got ", columns);
  TrellisRowLayout layout;
  layout.columns = columns;
  layout.blocks = (columns + format.block - 1) / format.block;
  layout.head_bytes = static_cast<size_t>(format.state_bits - format.bits + 7) / 8;
  layout.block_bytes = static_cast<size_t>(format.block) * static_cast<size_t>(format.bits) / 8;
  layout.code_bytes = layout.head_bytes + static_cast<size_t>(layout.blocks) * layout.block_bytes;
  return layout;
}

namespace {

// `count` bits of `value` (most significant first) at bit `position` of `bytes` (bit p is bit
// 7 - p % 8 of byte p / 8).
void write_bits(std::span<uint8_t> bytes, size_t position, uint32_t value, int count) {
  for (int i = count - 1; i >= 0; --i, ++position) {
    if ((value >> i) & 1u) bytes[position / 8] |= static_cast<uint8_t>(0x80u >> (position % 8));
  }
}

uint32_t read_bits(std::span<const uint8_t> bytes, size_t position, int count) {
  uint32_t value = 0;
  for (int i = 0; i < count; ++i, ++position) value = (value << 1) | ((bytes[position / 8] >> (7 - position % 8)) & 1u);
  return value;
}

// Where the stream of a row starts: its first state's L bits end where value 0's own k bits end.
size_t stream_start(const TrellisParams& params, size_t head_bytes) {
  return 8 * head_bytes - static_cast<size_t>(params.state_bits - params.bits_per_value);
}

void check_row_bytes(const TrellisParams& params, size_t row_bytes, size_t head_bytes, size_t values) {
  check_trellis_params(params);
  check(values >= 1, "a trellis walk needs at least one value");
  check(8 * head_bytes >= static_cast<size_t>(params.state_bits - params.bits_per_value) &&
            8 * row_bytes >= 8 * head_bytes + values * static_cast<size_t>(params.bits_per_value),
        "internal: ", row_bytes, " trellis bytes (", head_bytes, " of head) cannot hold ", values, " values");
}

[[noreturn]] void fail_block(std::span<const float> row, int64_t row_index, size_t first, size_t block, double gain) {
  const std::string row_part = row_index >= 0 ? concat("row ", row_index, ", ") : std::string();
  for (size_t c = first; c < std::min(row.size(), first + block); ++c) {
    if (!std::isfinite(row[c])) fail("non-finite weight at ", row_part, "column ", c);
  }
  fail("weight block at ", row_part, "columns ", first, "..", first + block - 1, " has gain ", gain,
       ", above the fp16 maximum 65504");
}

}  // namespace

void pack_trellis_walk(const TrellisParams& params, const TrellisWalk& walk, size_t head_bytes,
                       std::span<uint8_t> row) {
  const size_t values = walk.steps.size() + 1;
  check_row_bytes(params, row.size(), head_bytes, values);
  std::fill(row.begin(), row.end(), uint8_t{0});
  size_t position = stream_start(params, head_bytes);
  write_bits(row, position, walk.first_state & ((1u << params.state_bits) - 1), params.state_bits);
  position += static_cast<size_t>(params.state_bits);
  for (const uint8_t step : walk.steps) {
    write_bits(row, position, step, params.bits_per_value);
    position += static_cast<size_t>(params.bits_per_value);
  }
}

TrellisWalk unpack_trellis_walk(const TrellisParams& params, std::span<const uint8_t> row, size_t head_bytes,
                                size_t values) {
  check_row_bytes(params, row.size(), head_bytes, values);
  TrellisWalk walk;
  size_t position = stream_start(params, head_bytes);
  walk.first_state = read_bits(row, position, params.state_bits);
  position += static_cast<size_t>(params.state_bits);
  walk.steps.resize(values - 1);
  for (uint8_t& step : walk.steps) {
    step = static_cast<uint8_t>(read_bits(row, position, params.bits_per_value));
    position += static_cast<size_t>(params.bits_per_value);
  }
  return walk;
}

uint32_t trellis_state_at(const TrellisParams& params, std::span<const uint8_t> row, size_t head_bytes, size_t t) {
  check_row_bytes(params, row.size(), head_bytes, t + 1);
  const size_t end = 8 * head_bytes + (t + 1) * static_cast<size_t>(params.bits_per_value);
  return read_bits(row, end - static_cast<size_t>(params.state_bits), params.state_bits);
}

TrellisCodec::TrellisCodec(const TrellisFormat& format, int64_t columns,
                           std::shared_ptr<const std::vector<float>> codebook)
    : format_(format), layout_(trellis_row_layout(columns, format)), codebook_(std::move(codebook)) {
  if (codebook_ == nullptr) {
    codebook_ = std::make_shared<const std::vector<float>>(trellis_codebook(format.state_bits));
  }
  check(codebook_->size() == size_t{1} << format.state_bits, "internal: trellis codebook has ", codebook_->size(),
        " values for ", format.state_bits, " state bits");
  if (format.sign_seed) {
    padded_signs_ = random_signs(*format.sign_seed, static_cast<size_t>(columns));
    padded_signs_.resize(static_cast<size_t>(layout_.blocks * format.block), 1.0f);
  }
}

void TrellisCodec::quantize_row_at(std::span<const float> row, std::span<uint8_t> codes_row,
                                   std::span<uint16_t> gains_row, int64_t row_index) const {
  check(row.size() == static_cast<size_t>(layout_.columns) && codes_row.size() == layout_.code_bytes &&
            gains_row.size() == static_cast<size_t>(layout_.blocks),
        "internal: trellis row sizes do not match the codec's ", layout_.columns, " columns");
  const size_t block = static_cast<size_t>(format_.block);
  const size_t padded = static_cast<size_t>(layout_.blocks) * block;
  const double root_block = std::sqrt(static_cast<double>(block));
  // Rotated blocks (signs, then the orthonormal transform), and the same divided by their RMS: the
  // unit-variance values the walk codes.
  std::vector<float> rotated(padded, 0.0f), unit(padded, 0.0f);
  std::copy(row.begin(), row.end(), rotated.begin());
  std::vector<float> rms(static_cast<size_t>(layout_.blocks));
  for (size_t b = 0; b < rms.size(); ++b) {
    const std::span<float> part(rotated.data() + b * block, block);
    double squares = 0;
    for (const float v : part) squares += static_cast<double>(v) * v;
    // Non-finite weights, or blocks whose norm no fp16 gain can hold, stop before the walk.
    if (!(squares <= 1e60)) fail_block(row, row_index, b * block, block, std::sqrt(squares));
    if (!padded_signs_.empty()) {
      for (size_t i = 0; i < block; ++i) part[i] *= padded_signs_[b * block + i];
    }
    walsh_hadamard_transform(part);
    squares = 0;
    for (const float v : part) squares += static_cast<double>(v) * v;
    rms[b] = static_cast<float>(std::sqrt(squares / static_cast<double>(block)));
    for (size_t i = 0; i < block; ++i) unit[b * block + i] = rms[b] > 0 ? part[i] / rms[b] : 0.0f;
  }
  const TrellisParams params = trellis_params();
  const TrellisWalk walk = trellis_encode(params, *codebook_, unit);
  pack_trellis_walk(params, walk, layout_.head_bytes, codes_row);
  std::vector<float> coded(padded);
  trellis_decode(params, *codebook_, walk, coded);
  // Gains in HLWQ's convention (b_hat = g s H(c / sqrt(d))): the norm, or the least-squares g.
  for (size_t b = 0; b < rms.size(); ++b) {
    double gain = rms[b] * root_block;
    if (format_.gain == BlockGain::least_squares) {
      double dot = 0, energy = 0;
      for (size_t i = b * block; i < (b + 1) * block; ++i) {
        dot += rotated[i] * coded[i];
        energy += coded[i] * coded[i];
      }
      gain = energy > 0 ? root_block * static_cast<float>(dot / energy) : 0.0;
    }
    const uint16_t half = float_to_f16(static_cast<float>(gain));
    if ((half & 0x7fffu) >= 0x7c00u) fail_block(row, row_index, b * block, block, gain);
    gains_row[b] = half;
  }
}

void TrellisCodec::quantize_row(std::span<const float> row, std::span<uint8_t> codes_row,
                                std::span<uint16_t> gains_row) const {
  quantize_row_at(row, codes_row, gains_row, -1);
}

void TrellisCodec::decode_rotated_row(std::span<const uint8_t> codes_row, std::span<const uint16_t> gains_row,
                                      std::span<float> rotated) const {
  const size_t block = static_cast<size_t>(format_.block);
  check(codes_row.size() == layout_.code_bytes && gains_row.size() == static_cast<size_t>(layout_.blocks) &&
            rotated.size() == static_cast<size_t>(layout_.blocks) * block,
        "internal: trellis decode sizes do not match the codec's ", layout_.columns, " columns");
  const int state_bits = format_.state_bits;
  const size_t k = static_cast<size_t>(format_.bits), head = layout_.head_bytes, block_bytes = layout_.block_bytes;
  const uint32_t mask = (1u << state_bits) - 1;
  const float* table = codebook_->data();
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  // A block's bytes with the head bytes before them (the L - k bits its first state reaches back)
  // and 4 zero bytes after, so that every state is one 4-byte load, a shift and a mask.
  std::vector<uint8_t> local(head + block_bytes + 4, 0);
  for (size_t b = 0; b < static_cast<size_t>(layout_.blocks); ++b) {
    std::memcpy(local.data(), codes_row.data() + b * block_bytes, head + block_bytes);
    const float scale = f16_to_float(gains_row[b]) * inverse_root;
    float* out = rotated.data() + b * block;
    for (size_t j = 0; j < block; ++j) {
      const size_t first_bit = 8 * head + (j + 1) * k - static_cast<size_t>(state_bits);
      const uint8_t* bytes = local.data() + first_bit / 8;
      const uint32_t word = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | bytes[3];
      const uint32_t state = (word >> (32 - first_bit % 8 - static_cast<size_t>(state_bits))) & mask;
      out[j] = table[state] * scale;
    }
  }
}

void TrellisCodec::dequantize_row(std::span<const uint8_t> codes_row, std::span<const uint16_t> gains_row,
                                  std::span<float> row) const {
  check(row.size() == static_cast<size_t>(layout_.columns), "internal: trellis row has ", row.size(),
        " weights, codec expects ", layout_.columns);
  const size_t block = static_cast<size_t>(format_.block);
  std::vector<float> values(static_cast<size_t>(layout_.blocks) * block);
  decode_rotated_row(codes_row, gains_row, values);
  for (size_t first = 0; first < values.size(); first += block) walsh_hadamard_transform({values.data() + first, block});
  for (size_t c = 0; c < row.size(); ++c) row[c] = padded_signs_.empty() ? values[c] : values[c] * padded_signs_[c];
}

void TrellisCodec::quantize_matrix(DType dtype, std::span<const std::byte> weights, int64_t rows,
                                   std::span<uint8_t> codes, std::span<uint16_t> gains, ThreadPool& pool) const {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F64,
        "cannot trellis-code ", dtype_name(dtype), " weights (need F32, F16, BF16 or F64)");
  check(rows >= 0, "internal: negative row count ", rows);
  const size_t columns = static_cast<size_t>(layout_.columns), row_count = static_cast<size_t>(rows);
  const size_t row_bytes = columns * dtype_size(dtype), blocks = static_cast<size_t>(layout_.blocks);
  check(weights.size() == row_count * row_bytes && codes.size() == row_count * layout_.code_bytes &&
            gains.size() == row_count * blocks,
        "internal: trellis matrix sizes do not match ", rows, " rows of ", columns, " columns");
  pool.parallel_for(row_count, [&](size_t begin, size_t end) {
    std::vector<float> row(columns);
    for (size_t r = begin; r < end; ++r) {
      convert_to_float(dtype, weights.subspan(r * row_bytes, row_bytes), row);
      quantize_row_at(row, codes.subspan(r * layout_.code_bytes, layout_.code_bytes), gains.subspan(r * blocks, blocks),
                      static_cast<int64_t>(r));
    }
  });
}

void TrellisCodec::dequantize_matrix(std::span<const uint8_t> codes, std::span<const uint16_t> gains, int64_t rows,
                                     std::span<float> weights, ThreadPool& pool) const {
  check(rows >= 0, "internal: negative row count ", rows);
  const size_t columns = static_cast<size_t>(layout_.columns), row_count = static_cast<size_t>(rows);
  const size_t blocks = static_cast<size_t>(layout_.blocks);
  check(weights.size() == row_count * columns && codes.size() == row_count * layout_.code_bytes &&
            gains.size() == row_count * blocks,
        "internal: trellis matrix sizes do not match ", rows, " rows of ", columns, " columns");
  pool.parallel_for(row_count, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      dequantize_row(codes.subspan(r * layout_.code_bytes, layout_.code_bytes), gains.subspan(r * blocks, blocks),
                     weights.subspan(r * columns, columns));
    }
  });
}

void trellis_dequantize_row_reference(const TrellisFormat& format, std::span<const float> codebook,
                                      std::span<const float> signs, std::span<const uint8_t> codes_row,
                                      std::span<const uint16_t> gains_row, std::span<float> row) {
  const TrellisRowLayout layout = trellis_row_layout(static_cast<int64_t>(row.size()), format);
  check(signs.empty() || signs.size() == row.size(), "internal: ", signs.size(), " signs for ", row.size(),
        " columns");
  check(codes_row.size() == layout.code_bytes && gains_row.size() == static_cast<size_t>(layout.blocks),
        "internal: trellis reference row sizes do not match");
  const TrellisParams params{format.state_bits, format.bits};
  const size_t block = static_cast<size_t>(format.block);
  const size_t padded = static_cast<size_t>(layout.blocks) * block;
  const TrellisWalk walk = unpack_trellis_walk(params, codes_row, layout.head_bytes, padded);
  std::vector<float> coded(padded), scaled(block), rotated(block);
  trellis_decode(params, codebook, walk, coded);
  for (size_t b = 0; b < static_cast<size_t>(layout.blocks); ++b) {
    const double scale = f16_to_float(gains_row[b]) / std::sqrt(static_cast<double>(block));
    for (size_t i = 0; i < block; ++i) scaled[i] = static_cast<float>(coded[b * block + i] * scale);
    walsh_hadamard_transform_reference(scaled, rotated);
    for (size_t i = 0; i < block && b * block + i < row.size(); ++i) {
      const size_t column = b * block + i;
      row[column] = static_cast<float>((signs.empty() ? 1.0 : static_cast<double>(signs[column])) * rotated[i]);
    }
  }
}

}  // namespace hlwq
