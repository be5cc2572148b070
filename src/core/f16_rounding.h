// float -> f16 for whole arrays (every KV cache row a decode step stores: 11,520 values per
// SmolLM2-135M token), rounded like float_to_f16 in core/dtype.h.
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// out[i] = float_to_f16(values[i]) for every value but NaNs, which stay NaN (quiet, sign kept; the
// payload may differ). One vcvtps2ph per vector on x86 with F16C (AVX2 and up), float_to_f16 on
// other targets. out.size() == values.size().
void floats_to_f16(std::span<const float> values, std::span<uint16_t> out);

}  // namespace hlwq
