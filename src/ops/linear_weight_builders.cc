#include "ops/linear_weight_builders.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace hlwq {

namespace {

void check_matrix(std::span<const float> weights, int64_t rows, int64_t columns) {
  check(rows > 0 && columns > 0 && static_cast<int64_t>(weights.size()) == rows * columns,
        "matrix has ", weights.size(), " values, expected ", rows, "x", columns);
}

}  // namespace

LinearWeight make_dense_linear_weight(DType dtype, std::span<const float> weights, int64_t rows, int64_t columns) {
  check_matrix(weights, rows, columns);
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, "dense linear weight dtype ",
        dtype_name(dtype), " is not F32, F16 or BF16");
  LinearWeight weight;
  weight.format = LinearFormat::dense;
  weight.rows = rows;
  weight.columns = columns;
  weight.dtype = dtype;
  weight.data = AlignedBuffer(weights.size() * dtype_size(dtype));
  convert_from_float(weights, dtype, {weight.data.data(), weight.data.size()});
  return weight;
}

LinearWeight make_hlwq_linear_weight(std::shared_ptr<const HlwqCodec> codec, std::span<const float> weights,
                                     int64_t rows, ThreadPool& pool) {
  check(codec != nullptr, "internal: make_hlwq_linear_weight without a codec");
  const HlwqRowLayout& layout = codec->layout();
  check_matrix(weights, rows, layout.columns);
  LinearWeight weight;
  weight.format = LinearFormat::hlwq;
  weight.rows = rows;
  weight.columns = layout.columns;
  weight.dtype = DType::F32;
  weight.codes = AlignedBuffer(static_cast<size_t>(rows) * layout.code_bytes);
  weight.norms = AlignedBuffer(static_cast<size_t>(rows * layout.blocks) * sizeof(uint16_t));
  codec->quantize_matrix(DType::F32, std::as_bytes(weights), rows, weight.codes.as_mutable<uint8_t>(),
                         weight.norms.as_mutable<uint16_t>(), pool);
  weight.codec = std::move(codec);
  return weight;
}

LinearWeight make_trellis_linear_weight(std::shared_ptr<const TrellisCodec> codec, std::span<const float> weights,
                                        int64_t rows, ThreadPool& pool) {
  check(codec != nullptr, "internal: make_trellis_linear_weight without a codec");
  const TrellisRowLayout& layout = codec->layout();
  check_matrix(weights, rows, layout.columns);
  LinearWeight weight;
  weight.format = LinearFormat::trellis;
  weight.rows = rows;
  weight.columns = layout.columns;
  weight.dtype = DType::F32;
  weight.codes = AlignedBuffer(static_cast<size_t>(rows) * layout.code_bytes);
  weight.norms = AlignedBuffer(static_cast<size_t>(rows * layout.blocks) * sizeof(uint16_t));
  codec->quantize_matrix(DType::F32, std::as_bytes(weights), rows, weight.codes.as_mutable<uint8_t>(),
                         weight.norms.as_mutable<uint16_t>(), pool);
  weight.trellis = std::move(codec);
  return weight;
}

LinearWeight make_mlx_affine_linear_weight(const AffineParams& params, DType scale_dtype,
                                           std::span<const float> weights, int64_t rows, int64_t columns) {
  check_matrix(weights, rows, columns);
  check(affine_can_quantize(columns, params), "MLX affine cannot quantize ", columns, " columns in groups of ",
        params.group_size);
  LinearWeight weight;
  weight.format = LinearFormat::mlx_affine;
  weight.rows = rows;
  weight.columns = columns;
  weight.dtype = scale_dtype;
  weight.affine = params;
  weight.packed = AlignedBuffer(static_cast<size_t>(rows) * affine_packed_words_per_row(columns, params.bits) * 4);
  const size_t groups = static_cast<size_t>(rows * columns / params.group_size);
  weight.scales.resize(groups);
  weight.biases.resize(groups);
  affine_quantize_rows(params, scale_dtype, weights, rows, columns, weight.packed.as_mutable<uint32_t>(),
                       weight.scales, weight.biases);
  return weight;
}

LinearWeight make_int4_linear_weight(const Int4Params& params, DType scale_dtype, std::span<const float> weights,
                                     int64_t rows, int64_t columns) {
  check_matrix(weights, rows, columns);
  check(int4_can_quantize(columns, params), "INT4 cannot quantize ", columns, " columns in groups of ",
        params.group_size);
  LinearWeight weight;
  weight.format = LinearFormat::ct_int4;
  weight.rows = rows;
  weight.columns = columns;
  weight.dtype = scale_dtype;
  weight.int4 = params;
  weight.packed = AlignedBuffer(static_cast<size_t>(rows * columns / 2));
  weight.scales.resize(static_cast<size_t>(rows * columns / params.group_size));
  int4_quantize_rows(params, scale_dtype, weights, rows, columns, weight.packed.as_mutable<int32_t>(), weight.scales);
  return weight;
}

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Random bytes, in parallel chunks each with its own stream of the seed.
void fill_random_bytes(std::span<std::byte> bytes, uint64_t seed, ThreadPool& pool) {
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t chunks = (bytes.size() + kChunk - 1) / kChunk;
  pool.parallel_for(chunks, [&](size_t begin, size_t end) {
    for (size_t chunk = begin; chunk < end; ++chunk) {
      uint64_t state = seed ^ (chunk * 0xd1b54a32d192ed03ull);
      const size_t first = chunk * kChunk, last = std::min(bytes.size(), first + kChunk);
      for (size_t i = first; i < last; i += 8) {
        const uint64_t word = splitmix64(state);
        std::memcpy(bytes.data() + i, &word, std::min<size_t>(8, last - i));
      }
    }
  });
}

// Random floats in [low, high).
std::vector<float> random_floats(size_t count, float low, float high, uint64_t seed) {
  std::vector<float> values(count);
  uint64_t state = seed;
  for (float& value : values) value = low + (high - low) * static_cast<float>(splitmix64(state) >> 40) * 0x1p-24f;
  return values;
}

}  // namespace

LinearWeight make_random_linear_weight(const RandomLinearFormat& format, int64_t rows, int64_t columns, uint64_t seed,
                                       ThreadPool& pool) {
  check(rows > 0 && columns > 0, "random weight of ", rows, "x", columns);
  LinearWeight weight;
  weight.format = format.format;
  weight.rows = rows;
  weight.columns = columns;
  switch (format.format) {
    case LinearFormat::dense: {
      check(format.dense_dtype == DType::BF16 || format.dense_dtype == DType::F16, "random dense weights are BF16 or F16");
      weight.dtype = format.dense_dtype;
      weight.data = AlignedBuffer(static_cast<size_t>(rows * columns) * 2);
      fill_random_bytes({weight.data.data(), weight.data.size()}, seed, pool);
      // Keep sign and mantissa bits, set the exponent so |w| lies in [2^-8, 2^-4) (BF16) or
      // [2^-8, 2^-5) (F16): real-weight magnitudes, never NaN or Inf.
      const std::span<uint16_t> halves = weight.data.as_mutable<uint16_t>();
      const bool bfloat = format.dense_dtype == DType::BF16;
      pool.parallel_for(halves.size(), [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
          const uint16_t bits = halves[i];
          halves[i] = bfloat ? static_cast<uint16_t>((bits & 0x807f) | ((119 + ((bits >> 7) & 3)) << 7))
                             : static_cast<uint16_t>((bits & 0x83ff) | ((7 + ((bits >> 10) & 1) * 2) << 10));
        }
      });
      break;
    }
    case LinearFormat::hlwq: {
      HlwqParams params;
      params.bits = format.bits;
      params.block = fitted_block(columns, format.block);
      params.gain = BlockGain::least_squares;
      auto codec = std::make_shared<const HlwqCodec>(params, columns);
      const HlwqRowLayout& layout = codec->layout();
      weight.dtype = DType::F32;
      weight.codes = AlignedBuffer(static_cast<size_t>(rows) * layout.code_bytes);
      fill_random_bytes({weight.codes.data(), weight.codes.size()}, seed, pool);
      // Gains of a block of real weights (std 0.02): 0.02 sqrt(block), give or take 30%.
      const float typical = 0.02f * std::sqrt(static_cast<float>(params.block));
      const std::vector<float> gains =
          random_floats(static_cast<size_t>(rows * layout.blocks), 0.7f * typical, 1.3f * typical, seed + 1);
      weight.norms = AlignedBuffer(gains.size() * sizeof(uint16_t));
      convert_from_float(gains, DType::F16, {weight.norms.data(), weight.norms.size()});
      weight.codec = std::move(codec);
      break;
    }
    case LinearFormat::trellis: {
      TrellisFormat trellis;
      trellis.bits = format.bits;
      trellis.state_bits = format.state_bits;
      trellis.block = fitted_block(columns, format.block);
      auto codec = std::make_shared<const TrellisCodec>(trellis, columns, format.trellis_codebook);
      const TrellisRowLayout& layout = codec->layout();
      weight.dtype = DType::F32;
      // Random bits are a random walk: every state, so every codebook value, is as likely.
      weight.codes = AlignedBuffer(static_cast<size_t>(rows) * layout.code_bytes);
      fill_random_bytes({weight.codes.data(), weight.codes.size()}, seed, pool);
      const float typical = 0.02f * std::sqrt(static_cast<float>(trellis.block));
      const std::vector<float> gains =
          random_floats(static_cast<size_t>(rows * layout.blocks), 0.7f * typical, 1.3f * typical, seed + 1);
      weight.norms = AlignedBuffer(gains.size() * sizeof(uint16_t));
      convert_from_float(gains, DType::F16, {weight.norms.data(), weight.norms.size()});
      weight.trellis = std::move(codec);
      break;
    }
    case LinearFormat::mlx_affine: {
      weight.affine = AffineParams{format.bits, format.group_size};
      validate(weight.affine);
      check(affine_can_quantize(columns, weight.affine), "MLX affine cannot quantize ", columns,
            " columns in groups of ", format.group_size);
      weight.dtype = DType::BF16;
      weight.packed = AlignedBuffer(static_cast<size_t>(rows) * affine_packed_words_per_row(columns, format.bits) * 4);
      fill_random_bytes({weight.packed.data(), weight.packed.size()}, seed, pool);
      const size_t groups = static_cast<size_t>(rows * columns / format.group_size);
      // w = s q + b spanning about +-0.04 for q in 0..2^bits-1, rounded to BF16 as mlx_lm stores them.
      const float step = 0.08f / static_cast<float>((1 << format.bits) - 1);
      weight.scales = random_floats(groups, 0.7f * step, 1.3f * step, seed + 1);
      weight.biases = random_floats(groups, -0.05f, -0.03f, seed + 2);
      for (std::vector<float>* values : {&weight.scales, &weight.biases}) {
        for (float& value : *values) value = bf16_to_float(float_to_bf16(value));
      }
      break;
    }
    case LinearFormat::ct_int4: {
      weight.int4 = Int4Params{format.group_size};
      validate(weight.int4);
      check(int4_can_quantize(columns, weight.int4), "INT4 cannot quantize ", columns, " columns in groups of ",
            format.group_size);
      weight.dtype = DType::BF16;
      weight.packed = AlignedBuffer(static_cast<size_t>(rows * columns / 2));
      fill_random_bytes({weight.packed.data(), weight.packed.size()}, seed, pool);
      weight.scales = random_floats(static_cast<size_t>(rows * columns / format.group_size), 0.004f, 0.007f, seed + 1);
      for (float& value : weight.scales) value = bf16_to_float(float_to_bf16(value));
      break;
    }
  }
  return weight;
}

}  // namespace hlwq
