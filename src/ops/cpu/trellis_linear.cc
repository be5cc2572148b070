// Trellis linear product without dequantizing: the activations are rotated once per call into the
// codes' domain (x' = H(s * x_block)), then each weight row is decoded block by block straight in
// that domain (value t = gain / sqrt(d) * codebook[state t]) and dotted with x' by the shared
// row-product kernels. States: for k = 2, 4, 8 from the block's k-bit fields expanded to int32
// (shifted unaligned loads and ORs); for other k a 4-byte gather at each lane's bit offset, a byte
// swap, a shift and a mask. Then a scalar lookup in the codebook a value: on the development VM's
// AMD EPYC that decoded 14% faster than a codebook gather (k = 4, the demo model).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "hwy/aligned_allocator.h"
#include "ops/cpu/linear_kernels.h"
#include "ops/cpu/parallel_rows.h"
#include "quant/hadamard.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/trellis_linear.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "ops/cpu/row_product-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

constexpr size_t kMaxBlock = 1024;

// The k-bit fields of `count` bytes (most significant first) as int32, for k dividing 8: field i
// of the stream is fields[i]. A plain loop the compiler vectorizes for the target.
template <int kBits>
HWY_INLINE void ExpandFields(const uint8_t* HWY_RESTRICT bytes, size_t count, int32_t* HWY_RESTRICT fields) {
  constexpr int kPerByte = 8 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1;
  for (size_t p = 0; p < count; ++p) {
    for (int r = 0; r < kPerByte; ++r) {
      fields[p * kPerByte + static_cast<size_t>(r)] = static_cast<int32_t>((bytes[p] >> (8 - kBits * (r + 1))) & kMask);
    }
  }
}

// One row in the rotated domain into `out` (blocks * d floats), for k dividing 8: each block's
// bytes (with the head bytes before them, which hold the bits its first states reach back to) are
// expanded to one int32 a k-bit field, so the state of value j is the OR of its last ceil(L / k)
// fields shifted into place: unaligned loads, shifts and ORs, then one gather from the codebook.
// `fields` has room for (head_bytes + block_bytes) * 8 / k values.
template <int kBits>
HWY_INLINE void DecodeTrellisRowFromFields(const TrellisCodec& codec, const uint8_t* HWY_RESTRICT codes_row,
                                           const uint16_t* HWY_RESTRICT gains_row, int32_t* HWY_RESTRICT fields,
                                           float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const size_t lanes = hn::Lanes(d);
  const TrellisRowLayout& layout = codec.layout();
  const size_t block = static_cast<size_t>(codec.format().block);
  const int state_bits = codec.format().state_bits;
  const size_t head = layout.head_bytes, block_bytes = layout.block_bytes;
  // Value j's own field is head * 8 / k + j; its state reaches back `reach` fields more, inside the
  // head bytes for the first value: reach k is the smallest multiple of k not below L - k, and 8 head
  // is a multiple of k not below L - k.
  const size_t first_own = head * 8 / kBits;
  const size_t reach = static_cast<size_t>((state_bits + kBits - 1) / kBits) - 1;
  const float* HWY_RESTRICT table = codec.codebook().data();
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  const auto mask = hn::Set(di, static_cast<int32_t>((1u << state_bits) - 1));
  HWY_ALIGN int32_t states[kMaxBlock];
  for (size_t b = 0; b < static_cast<size_t>(layout.blocks); ++b) {
    ExpandFields<kBits>(codes_row + b * block_bytes, head + block_bytes, fields);
    for (size_t j = 0; j < block; j += lanes) {
      const int32_t* own = fields + first_own + j;
      auto state = hn::LoadU(di, own);
      for (size_t i = 1; i <= reach; ++i) {
        state = hn::Or(state, hn::ShiftLeftSame(hn::LoadU(di, own - i), static_cast<int>(i) * kBits));
      }
      hn::Store(hn::And(state, mask), di, states + j);
    }
    // Scalar lookups (see the top of the file).
    const float scale = f16_to_float(gains_row[b]) * inverse_root;
    float* HWY_RESTRICT values = out + b * block;
    for (size_t j = 0; j < block; ++j) values[j] = table[states[j]] * scale;
  }
}

// One row in the rotated domain into `out` (blocks * d floats), any k. `local` has room for a
// block's bytes, the head bytes before them and 4 zero bytes after (head_bytes + block_bytes + 4).
HWY_INLINE void DecodeTrellisRowByGathers(const TrellisCodec& codec, const uint8_t* HWY_RESTRICT codes_row,
                                          const uint16_t* HWY_RESTRICT gains_row, uint8_t* HWY_RESTRICT local,
                                          float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::RebindToUnsigned<decltype(d)> du;
  const size_t lanes = hn::Lanes(d);
  const TrellisRowLayout& layout = codec.layout();
  const size_t block = static_cast<size_t>(codec.format().block);
  const int32_t state_bits = codec.format().state_bits, k = codec.format().bits;
  const size_t head = layout.head_bytes, block_bytes = layout.block_bytes;
  const float* HWY_RESTRICT table = codec.codebook().data();
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  // Lane j of a vector starting at value v: the state's first bit is 8 head + (v + j + 1) k - L.
  const auto lane_first_bits =
      hn::Add(hn::Mul(hn::Iota(di, 1), hn::Set(di, k)), hn::Set(di, static_cast<int32_t>(8 * head) - state_bits));
  const auto mask = hn::Set(du, (1u << state_bits) - 1);
  const auto byte = hn::Set(du, 0xffu);
  const int32_t* words = reinterpret_cast<const int32_t*>(local);
  HWY_ALIGN int32_t states[kMaxBlock];
  for (size_t b = 0; b < static_cast<size_t>(layout.blocks); ++b) {
    std::memcpy(local, codes_row + b * block_bytes, head + block_bytes);
    for (size_t j = 0; j < block; j += lanes) {
      const auto first_bit = hn::Add(lane_first_bits, hn::Set(di, static_cast<int32_t>(j) * k));
      const auto word = hn::BitCast(du, hn::GatherOffset(di, words, hn::ShiftRight<3>(first_bit)));
      // The 4 bytes as stored, first byte most significant.
      const auto big_endian = hn::Or(
          hn::Or(hn::ShiftLeft<24>(word), hn::ShiftLeft<8>(hn::And(word, hn::Set(du, 0xff00u)))),
          hn::Or(hn::And(hn::ShiftRight<8>(word), hn::Set(du, 0xff00u)), hn::And(hn::ShiftRight<24>(word), byte)));
      const auto shift = hn::BitCast(
          du, hn::Sub(hn::Set(di, 32 - state_bits), hn::And(first_bit, hn::Set(di, 7))));
      hn::Store(hn::BitCast(di, hn::And((big_endian >> shift), mask)), di, states + j);
    }
    const float scale = f16_to_float(gains_row[b]) * inverse_root;
    float* HWY_RESTRICT values = out + b * block;
    for (size_t j = 0; j < block; ++j) values[j] = table[states[j]] * scale;
  }
}

void TrellisRows(const TrellisCodec& codec, const uint8_t* codes, const uint16_t* gains, const RowProductShape& shape,
                 size_t begin, size_t end) {
  const TrellisRowLayout& layout = codec.layout();
  const size_t blocks = static_cast<size_t>(layout.blocks);
  const size_t local_bytes = layout.head_bytes + layout.block_bytes;
  auto scratch = hwy::AllocateAligned<float>(shape.chunk_rows * shape.length);
  auto local = hwy::AllocateAligned<uint8_t>(local_bytes + 4);
  std::fill(local.get(), local.get() + local_bytes + 4, uint8_t{0});
  auto fields = hwy::AllocateAligned<int32_t>(local_bytes * 8);
  const auto decode = [&](auto decode_row) {
    ProductOfRows<float>(shape, begin, end, scratch.get(), [&](size_t row, float* out) {
      decode_row(codes + row * layout.code_bytes, gains + row * blocks, out);
      return static_cast<const float*>(out);
    });
  };
  switch (codec.format().bits) {
    case 2:
      return decode([&](const uint8_t* c, const uint16_t* g, float* out) {
        DecodeTrellisRowFromFields<2>(codec, c, g, fields.get(), out);
      });
    case 4:
      return decode([&](const uint8_t* c, const uint16_t* g, float* out) {
        DecodeTrellisRowFromFields<4>(codec, c, g, fields.get(), out);
      });
    case 8:
      return decode([&](const uint8_t* c, const uint16_t* g, float* out) {
        DecodeTrellisRowFromFields<8>(codec, c, g, fields.get(), out);
      });
    default:
      return decode([&](const uint8_t* c, const uint16_t* g, float* out) {
        DecodeTrellisRowByGathers(codec, c, g, local.get(), out);
      });
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(TrellisRows);

bool trellis_linear_applies(const LinearWeight& weight) {
  // Blocks are whole vectors (at most 16 lanes; blocks are 32..1024).
  return weight.format == LinearFormat::trellis && weight.trellis != nullptr && weight.trellis->format().block >= 16;
}

namespace {

// x' rows (blocks * d floats each): the activation row zero-padded, times the signs, each block
// through the orthonormal transform.
std::vector<float> rotate_activations(const TrellisCodec& codec, std::span<const float> x, size_t batch) {
  const size_t columns = static_cast<size_t>(codec.layout().columns);
  const size_t block = static_cast<size_t>(codec.format().block);
  const size_t padded = static_cast<size_t>(codec.layout().blocks) * block;
  const std::span<const float> signs = codec.padded_signs();
  std::vector<float> rotated(batch * padded, 0.0f);
  for (size_t b = 0; b < batch; ++b) {
    float* row = rotated.data() + b * padded;
    std::memcpy(row, x.data() + b * columns, columns * sizeof(float));
    if (!signs.empty()) {
      for (size_t c = 0; c < columns; ++c) row[c] *= signs[c];
    }
    for (size_t first = 0; first < padded; first += block) walsh_hadamard_transform({row + first, block});
  }
  return rotated;
}

}  // namespace

RowProduct trellis_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                               std::span<float> y) {
  check(trellis_linear_applies(weight), "internal: trellis_linear_forward on a weight it does not apply to");
  const TrellisCodec& codec = *weight.trellis;
  const TrellisRowLayout& layout = codec.layout();
  const size_t rows = static_cast<size_t>(weight.rows);
  check(layout.columns == weight.columns && weight.codes.size() == rows * layout.code_bytes &&
            weight.norms.size() == rows * static_cast<size_t>(layout.blocks) * sizeof(uint16_t),
        "internal: trellis_linear_forward sizes do not match the ", rows, "x", weight.columns, " weight");
  check(batch >= 0 && x.size() == static_cast<size_t>(batch * weight.columns) &&
            y.size() == static_cast<size_t>(batch) * rows,
        "internal: trellis_linear_forward x has ", x.size(), " values, y ", y.size(), " for batch ", batch,
        " and a ", rows, "x", weight.columns, " weight");
  auto rotated = std::make_shared<const std::vector<float>>(rotate_activations(codec, x, static_cast<size_t>(batch)));
  const size_t padded = static_cast<size_t>(layout.blocks * codec.format().block);
  RowProductShape shape;
  shape.x = rotated->data();
  shape.batch = static_cast<size_t>(batch);
  shape.x_stride = shape.length = padded;
  shape.y = y.data();
  shape.rows = rows;
  shape.chunk_rows = chunk_rows_for(shape.batch, padded);
  const uint8_t* codes = weight.codes.as<uint8_t>().data();
  const uint16_t* gains = weight.norms.as<uint16_t>().data();
  // The kernel holds the rotated activations: the shape points into them.
  return {shape, [&codec, codes, gains, rotated = std::move(rotated)](const RowProductShape& part, size_t begin,
                                                                      size_t end) {
            HWY_DYNAMIC_DISPATCH(TrellisRows)(codec, codes, gains, part, begin, end);
          }};
}

void trellis_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                            std::span<float> y, ThreadPool& pool) {
  const RowProduct product = trellis_row_product(weight, x, batch, y);
  parallel_rows(pool, product.shape, product.kernel);
}

}  // namespace hlwq
#endif  // HWY_ONCE
