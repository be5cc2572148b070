// Element types of tensors as safetensors names them, and the 16-bit float conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

namespace hlwq {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);                  // "BF16", as in safetensors headers
std::optional<DType> parse_dtype(std::string_view name);   // inverse of dtype_name
bool is_float(DType dtype);

inline float bf16_to_float(uint16_t bits) {
  uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof value);
  return value;
}

// Round to nearest even; NaN stays NaN (quiet), infinities stay infinite.
inline uint16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float value);  // round to nearest even, overflow to infinity

// Converts `count` elements of a float dtype (F64/F32/F16/BF16) to float.
void convert_to_float(DType dtype, std::span<const std::byte> source, std::span<float> destination);
// Converts float to a float dtype; destination holds values.size() * dtype_size(dtype) bytes.
void convert_from_float(std::span<const float> values, DType dtype, std::span<std::byte> destination);

}  // namespace hlwq
