// float -> f16 arrays with the hardware conversion where Highway has it (x86 AVX2 / AVX-512:
// vcvtps2ph, round to nearest even); the scalar float_to_f16 elsewhere, whose software rounding
// was ~3 us of each SmolLM2 decode layer's KV cache store.
#include "core/f16_rounding.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/f16_rounding.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void FloatsToF16(const float* values, uint16_t* out, size_t count) {
  size_t i = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)
  // Only here is DemoteTo the hardware conversion; Highway's emulation elsewhere truncates.
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::float16_t, decltype(d)> half;
  const size_t lanes = hn::Lanes(d);
  for (; i + lanes <= count; i += lanes) {
    hn::StoreU(hn::DemoteTo(half, hn::LoadU(d, values + i)), half, reinterpret_cast<hwy::float16_t*>(out + i));
  }
#endif
  for (; i < count; ++i) out[i] = float_to_f16(values[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(FloatsToF16);

void floats_to_f16(std::span<const float> values, std::span<uint16_t> out) {
  check(out.size() == values.size(), "internal: floats_to_f16 of ", values.size(), " values into ", out.size());
  HWY_DYNAMIC_DISPATCH(FloatsToF16)(values.data(), out.data(), values.size());
}

}  // namespace hlwq
#endif  // HWY_ONCE
