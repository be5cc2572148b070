#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#include "core/error.h"
#include "core/f16_rounding.h"

namespace hlwq {
namespace {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeEntry, 13> kDTypes = {{
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1}, {DType::U64, "U64", 8},
    {DType::U32, "U32", 4}, {DType::U16, "U16", 2}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
}};

}  // namespace

size_t dtype_size(DType dtype) { return kDTypes[static_cast<size_t>(dtype)].size; }

std::string_view dtype_name(DType dtype) { return kDTypes[static_cast<size_t>(dtype)].name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

bool is_float(DType dtype) {
  return dtype == DType::F64 || dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t result;
  if (exponent == 0) {
    if (mantissa == 0) {
      result = sign;
    } else {  // subnormal: normalize
      int shift = 0;
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        ++shift;
      }
      mantissa &= 0x3ffu;
      result = sign | static_cast<uint32_t>(127 - 15 + 1 - shift) << 23 | mantissa << 13;
    }
  } else if (exponent == 0x1f) {
    result = sign | 0x7f800000u | mantissa << 13;
  } else {
    result = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  return std::bit_cast<float>(result);
}

uint16_t float_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (magnitude < 0x38800000u) {  // below the smallest normal f16 (2^-14): subnormal or zero
    if (magnitude < 0x33000000u) return sign;  // below half the smallest subnormal
    const uint32_t exponent = magnitude >> 23;
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14 - (exponent - 127) + 13 - 1 ... see below
    // value = mantissa * 2^(exponent-150); subnormal unit = 2^-24 -> shift right by (126 - exponent).
    uint32_t result = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (remainder > half || (remainder == half && (result & 1u))) ++result;
    return sign | static_cast<uint16_t>(result);
  }
  uint32_t rebased = magnitude - (112u << 23);  // exponent 127 -> 15
  const uint32_t remainder = rebased & 0x1fffu;
  uint32_t result = rebased >> 13;
  if (remainder > 0x1000u || (remainder == 0x1000u && (result & 1u))) ++result;
  return sign | static_cast<uint16_t>(result);
}

void convert_to_float(DType dtype, std::span<const std::byte> source, std::span<float> destination) {
  const size_t count = destination.size();
  check(source.size() == count * dtype_size(dtype), "internal: size mismatch converting ",
        dtype_name(dtype), " to F32");
  switch (dtype) {
    case DType::F32:
      std::memcpy(destination.data(), source.data(), count * 4);
      return;
    case DType::F64:
      for (size_t i = 0; i < count; ++i) {
        double value;
        std::memcpy(&value, source.data() + 8 * i, 8);
        destination[i] = static_cast<float>(value);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, source.data() + 2 * i, 2);
        destination[i] = f16_to_float(bits);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, source.data() + 2 * i, 2);
        destination[i] = bf16_to_float(bits);
      }
      return;
    default:
      fail("cannot convert ", dtype_name(dtype), " to floating point");
  }
}

void convert_from_float(std::span<const float> values, DType dtype, std::span<std::byte> destination) {
  const size_t count = values.size();
  check(destination.size() == count * dtype_size(dtype), "internal: size mismatch converting F32 to ",
        dtype_name(dtype));
  switch (dtype) {
    case DType::F32:
      std::memcpy(destination.data(), values.data(), count * 4);
      return;
    case DType::F64:
      for (size_t i = 0; i < count; ++i) {
        const double value = values[i];
        std::memcpy(destination.data() + 8 * i, &value, 8);
      }
      return;
    case DType::F16:
      // destination may be unaligned for uint16_t: convert in aligned chunks, then copy.
      for (size_t first = 0; first < count; first += 256) {
        uint16_t chunk[256];
        const size_t length = std::min<size_t>(256, count - first);
        floats_to_f16(values.subspan(first, length), std::span(chunk, length));
        std::memcpy(destination.data() + 2 * first, chunk, 2 * length);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) {
        const uint16_t bits = float_to_bf16(values[i]);
        std::memcpy(destination.data() + 2 * i, &bits, 2);
      }
      return;
    default:
      fail("cannot convert floating point to ", dtype_name(dtype));
  }
}

}  // namespace hlwq
