// Rounds a float to the nearest value of a narrower float dtype, as PyTorch and MLX do each time
// they store an intermediate result in the tensor's dtype (emulating them needs these roundings).
#pragma once

#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace hlwq {

// True for the dtypes weights and their scales come in: BF16, F16, F32.
inline bool is_scale_dtype(DType dtype) {
  return dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::F32;
}

inline void check_scale_dtype(DType dtype, const char* what) {
  check(is_scale_dtype(dtype), what, " needs a BF16, F16 or F32 scale dtype, got ", dtype_name(dtype));
}

// Round to nearest even in `dtype` (one of is_scale_dtype), returned widened back to float.
inline float round_to_dtype(float value, DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return bf16_to_float(float_to_bf16(value));
    case DType::F16:
      return f16_to_float(float_to_f16(value));
    default:
      return value;
  }
}

// std::rint in the default rounding mode (ties to even, -0.3 -> -0.0), which MLX and PyTorch use, but
// without the library call baseline x86-64 makes for it (rint/nearbyint cost more than the rest of a
// weight's quantization). Adding 2^23 leaves no fraction bits, so the addition itself rounds.
inline float round_half_even(float value) {
  constexpr float kNoFractionBits = 0x1p23f;
  const float magnitude = std::abs(value);
  if (!(magnitude < kNoFractionBits)) return value;  // already an integer, or NaN / infinity
  return std::copysign((magnitude + kNoFractionBits) - kNoFractionBits, value);
}

}  // namespace hlwq
