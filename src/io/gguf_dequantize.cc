// GGUF tensor types: names, block sizes, and dequantization of the block formats to float.
// Bit layouts follow ggml's ggml-quants.c (as mirrored by gguf-py's gguf/quants.py).
#include <array>
#include <bit>
#include <cstring>
#include <optional>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"

namespace hlwq {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF data is read in place as little-endian");

struct TypeEntry {
  uint32_t id;
  std::string_view name;
  uint64_t block_elements;
  uint64_t block_bytes;
  bool supported;  // dequantize_gguf handles it
};

// Sizes from ggml's type traits (gguf-py's GGML_QUANT_SIZES). 256 is QK_K.
constexpr std::array<TypeEntry, 34> kTypes = {{
    {0, "F32", 1, 4, true},          {1, "F16", 1, 2, true},
    {2, "Q4_0", 32, 18, true},       {3, "Q4_1", 32, 20, true},
    {6, "Q5_0", 32, 22, true},       {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},       {9, "Q8_1", 32, 40, false},
    {10, "Q2_K", 256, 84, false},    {11, "Q3_K", 256, 110, false},
    {12, "Q4_K", 256, 144, true},    {13, "Q5_K", 256, 176, true},
    {14, "Q6_K", 256, 210, true},    {15, "Q8_K", 256, 292, false},
    {16, "IQ2_XXS", 256, 66, false}, {17, "IQ2_XS", 256, 74, false},
    {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
    {20, "IQ4_NL", 32, 18, false},   {21, "IQ3_S", 256, 110, false},
    {22, "IQ2_S", 256, 82, false},   {23, "IQ4_XS", 256, 136, false},
    {24, "I8", 1, 1, true},          {25, "I16", 1, 2, true},
    {26, "I32", 1, 4, true},         {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, true},         {29, "IQ1_M", 256, 56, false},
    {30, "BF16", 1, 2, true},        {34, "TQ1_0", 256, 54, false},
    {35, "TQ2_0", 256, 66, false},   {39, "MXFP4", 32, 17, false},
    {40, "NVFP4", 64, 36, false},    {41, "Q1_0", 128, 18, false},
}};

std::optional<TypeEntry> find_type(uint32_t id) {
  for (const TypeEntry& entry : kTypes) {
    if (entry.id == id) return entry;
  }
  return std::nullopt;
}

TypeEntry known_type(GgufTensorType type) {
  const auto entry = find_type(static_cast<uint32_t>(type));
  if (!entry) fail("unknown GGUF tensor type ", static_cast<uint32_t>(type));
  return *entry;
}

inline float load_f16(const uint8_t* bytes) {
  return f16_to_float(static_cast<uint16_t>(bytes[0] | bytes[1] << 8));
}

inline uint32_t load_u32(const uint8_t* bytes) {
  uint32_t value;
  std::memcpy(&value, bytes, 4);
  return value;
}

// Each decoder turns one block into block_elements floats. Products and sums are separate
// statements so no compiler fuses them into one rounding (gguf-py rounds each step).

void decode_q4_0(const uint8_t* block, float* out) {  // f16 d, 16 bytes of nibbles
  const float scale = load_f16(block);
  const uint8_t* nibbles = block + 2;
  for (int j = 0; j < 16; ++j) {
    out[j] = scale * static_cast<float>((nibbles[j] & 0x0f) - 8);
    out[j + 16] = scale * static_cast<float>((nibbles[j] >> 4) - 8);
  }
}

void decode_q4_1(const uint8_t* block, float* out) {  // f16 d, f16 m, 16 bytes of nibbles
  const float scale = load_f16(block);
  const float minimum = load_f16(block + 2);
  const uint8_t* nibbles = block + 4;
  for (int j = 0; j < 16; ++j) {
    const float low = scale * static_cast<float>(nibbles[j] & 0x0f);
    const float high = scale * static_cast<float>(nibbles[j] >> 4);
    out[j] = low + minimum;
    out[j + 16] = high + minimum;
  }
}

// The 5-bit codes of Q5_0/Q5_1: low nibbles as in Q4, bit 4 of element i is bit i of `high_bits`.
inline void five_bit_codes(const uint8_t* nibbles, uint32_t high_bits, int* codes) {
  for (int j = 0; j < 16; ++j) {
    codes[j] = (nibbles[j] & 0x0f) | static_cast<int>((high_bits >> j) & 1u) << 4;
    codes[j + 16] = (nibbles[j] >> 4) | static_cast<int>((high_bits >> (j + 16)) & 1u) << 4;
  }
}

void decode_q5_0(const uint8_t* block, float* out) {  // f16 d, u32 high bits, 16 bytes
  const float scale = load_f16(block);
  int codes[32];
  five_bit_codes(block + 6, load_u32(block + 2), codes);
  for (int j = 0; j < 32; ++j) out[j] = scale * static_cast<float>(codes[j] - 16);
}

void decode_q5_1(const uint8_t* block, float* out) {  // f16 d, f16 m, u32 high bits, 16 bytes
  const float scale = load_f16(block);
  const float minimum = load_f16(block + 2);
  int codes[32];
  five_bit_codes(block + 8, load_u32(block + 4), codes);
  for (int j = 0; j < 32; ++j) {
    const float scaled = scale * static_cast<float>(codes[j]);
    out[j] = scaled + minimum;
  }
}

void decode_q8_0(const uint8_t* block, float* out) {  // f16 d, 32 int8
  const float scale = load_f16(block);
  for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(static_cast<int8_t>(block[2 + j])) * scale;
}

// Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit minimums into 12 bytes: bytes 0-3 hold
// scales 0-3 (low 6 bits), bytes 4-7 minimums 0-3; bytes 8-11 hold the low 4 bits of scales
// 4-7 (low nibble) and minimums 4-7 (high nibble), whose top 2 bits are the spare top bits
// of bytes 0-3 (scales) and 4-7 (minimums).
inline void k_scale_and_minimum(const uint8_t* packed, int sub_block, int* scale, int* minimum) {
  if (sub_block < 4) {
    *scale = packed[sub_block] & 63;
    *minimum = packed[sub_block + 4] & 63;
  } else {
    *scale = (packed[sub_block + 4] & 0x0f) | (packed[sub_block - 4] >> 6) << 4;
    *minimum = (packed[sub_block + 4] >> 4) | (packed[sub_block] >> 6) << 4;
  }
}

// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Sub-block s (32 values) of
// each 64-value chunk c takes the low (s = 0) or high (s = 1) nibbles of bytes 32c..32c+31.
// Q4_K and Q5_K share scales and nibble layout; Q5_K adds `high_bits` (nullptr for Q4_K).
void decode_k_quant_sub_blocks(const uint8_t* block, const uint8_t* high_bits, const uint8_t* nibbles,
                               float* out) {
  const float scale = load_f16(block);
  const float minimum_scale = load_f16(block + 2);
  const uint8_t* packed_scales = block + 4;
  for (int sub_block = 0; sub_block < 8; ++sub_block) {
    int sub_scale, sub_minimum;
    k_scale_and_minimum(packed_scales, sub_block, &sub_scale, &sub_minimum);
    const float step = scale * static_cast<float>(sub_scale);
    const float offset = minimum_scale * static_cast<float>(sub_minimum);
    const uint8_t* source = nibbles + 32 * (sub_block / 2);
    const int shift = 4 * (sub_block % 2);
    float* target = out + 32 * sub_block;
    for (int j = 0; j < 32; ++j) {
      int code = (source[j] >> shift) & 0x0f;
      if (high_bits != nullptr) code |= ((high_bits[j] >> sub_block) & 1) << 4;
      const float scaled = step * static_cast<float>(code);
      target[j] = scaled - offset;
    }
  }
}

void decode_q4_k(const uint8_t* block, float* out) { decode_k_quant_sub_blocks(block, nullptr, block + 16, out); }

// Q5_K: as Q4_K plus 32 bytes of fifth bits (bit s of byte j belongs to element j of
// sub-block s), stored between the scales and the nibbles.
void decode_q5_k(const uint8_t* block, float* out) {
  decode_k_quant_sub_blocks(block, block + 16, block + 48, out);
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales (one per 16
// values), f16 d. In each 128-value half h, value r takes nibble r / 64 of byte 64h + r % 64
// and bit pair r / 32 of byte 32h + r % 32; codes are offset by 32.
void decode_q6_k(const uint8_t* block, float* out) {
  const uint8_t* low_nibbles = block;
  const uint8_t* high_pairs = block + 128;
  const uint8_t* scales = block + 192;
  const float scale = load_f16(block + 208);
  for (int half = 0; half < 2; ++half) {
    for (int r = 0; r < 128; ++r) {
      const int element = 128 * half + r;
      const int low = (low_nibbles[64 * half + r % 64] >> (4 * (r / 64))) & 0x0f;
      const int high = (high_pairs[32 * half + r % 32] >> (2 * (r / 32))) & 0x03;
      const float step = scale * static_cast<float>(static_cast<int8_t>(scales[element / 16]));
      out[element] = step * static_cast<float>((low | high << 4) - 32);
    }
  }
}

template <class Element>
void decode_scalars(const std::byte* source, std::span<float> destination) {
  for (size_t i = 0; i < destination.size(); ++i) {
    Element value;
    std::memcpy(&value, source + i * sizeof(Element), sizeof(Element));
    destination[i] = static_cast<float>(value);
  }
}

template <void (*decode_block)(const uint8_t*, float*)>
void decode_blocks(std::span<const std::byte> source, std::span<float> destination,
                   const TypeEntry& type) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(source.data());
  const size_t blocks = destination.size() / type.block_elements;
  for (size_t block = 0; block < blocks; ++block) {
    decode_block(bytes + block * type.block_bytes, destination.data() + block * type.block_elements);
  }
}

}  // namespace

std::string gguf_type_name(uint32_t type) {
  const auto entry = find_type(type);
  return entry ? std::string(entry->name) : concat("type ", type);
}

bool gguf_type_is_known(uint32_t type) { return find_type(type).has_value(); }

bool gguf_type_is_supported(GgufTensorType type) {
  const auto entry = find_type(static_cast<uint32_t>(type));
  return entry && entry->supported;
}

uint64_t gguf_block_elements(GgufTensorType type) { return known_type(type).block_elements; }

uint64_t gguf_block_bytes(GgufTensorType type) { return known_type(type).block_bytes; }

void dequantize_gguf(GgufTensorType type, std::span<const std::byte> source, std::span<float> destination) {
  const TypeEntry entry = known_type(type);
  check(entry.supported, "cannot dequantize GGUF tensor type ", entry.name);
  check(destination.size() % entry.block_elements == 0, "internal: ", destination.size(),
        " elements is not a whole number of ", entry.name, " blocks");
  check(source.size() == destination.size() / entry.block_elements * entry.block_bytes,
        "internal: ", source.size(), " bytes do not hold ", destination.size(), " ", entry.name,
        " elements");
  switch (type) {
    case GgufTensorType::F32:
      if (!destination.empty()) std::memcpy(destination.data(), source.data(), source.size());
      return;
    case GgufTensorType::F16:
      for (size_t i = 0; i < destination.size(); ++i) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(source.data()) + 2 * i;
        destination[i] = load_f16(bytes);
      }
      return;
    case GgufTensorType::BF16:
      for (size_t i = 0; i < destination.size(); ++i) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(source.data()) + 2 * i;
        destination[i] = bf16_to_float(static_cast<uint16_t>(bytes[0] | bytes[1] << 8));
      }
      return;
    case GgufTensorType::F64: return decode_scalars<double>(source.data(), destination);
    case GgufTensorType::I8: return decode_scalars<int8_t>(source.data(), destination);
    case GgufTensorType::I16: return decode_scalars<int16_t>(source.data(), destination);
    case GgufTensorType::I32: return decode_scalars<int32_t>(source.data(), destination);
    case GgufTensorType::Q4_0: return decode_blocks<decode_q4_0>(source, destination, entry);
    case GgufTensorType::Q4_1: return decode_blocks<decode_q4_1>(source, destination, entry);
    case GgufTensorType::Q5_0: return decode_blocks<decode_q5_0>(source, destination, entry);
    case GgufTensorType::Q5_1: return decode_blocks<decode_q5_1>(source, destination, entry);
    case GgufTensorType::Q8_0: return decode_blocks<decode_q8_0>(source, destination, entry);
    case GgufTensorType::Q4_K: return decode_blocks<decode_q4_k>(source, destination, entry);
    case GgufTensorType::Q5_K: return decode_blocks<decode_q5_k>(source, destination, entry);
    case GgufTensorType::Q6_K: return decode_blocks<decode_q6_k>(source, destination, entry);
    default: fail("cannot dequantize GGUF tensor type ", entry.name);
  }
}

}  // namespace hlwq
