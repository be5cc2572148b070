// The MLP gates. silu_mul runs with SIMD and Highway's exp: at std::exp's ~4 ns a value it was
// 0.19 ms of a 5.5 ms SmolLM2-135M decode step (1,536 values x 30 layers per token).
#include "ops/activation.h"

#include <algorithm>
#include <cmath>
#include <numbers>

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/activation.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// silu(g) for g below -88 is 0: |g e^g| < 1e-36 there (std::exp(-g) overflows to infinity from
// 88.73 on, giving 0 too), and Highway's exp is valid only up to 104.
constexpr float kLargestExponent = 88.0f;

void SiluMul(const float* gate, const float* up, float* out, size_t count) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f), largest = hn::Set(d, kLargestExponent);
  size_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    const auto g = hn::LoadU(d, gate + i);
    const auto exponent = hn::Neg(g);
    const auto silu = hn::Div(g, hn::Add(one, hn::Exp(d, hn::Min(exponent, largest))));
    // Gt is false for NaN, so a NaN gate stays NaN.
    hn::StoreU(hn::IfThenZeroElse(hn::Gt(exponent, largest), hn::Mul(silu, hn::LoadU(d, up + i))), d, out + i);
  }
  for (; i < count; ++i) {
    out[i] = -gate[i] > kLargestExponent ? 0.0f : gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(SiluMul);

void silu_mul(std::span<const float> gate, std::span<const float> up, std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate.data(), up.data(), out.data(), gate.size());
}

void gelu_tanh_mul(std::span<const float> gate, std::span<const float> up, std::span<float> out) {
  const double sqrt_two_over_pi = std::sqrt(2.0 / std::numbers::pi);
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    const double gelu = 0.5 * g * (1.0 + std::tanh(sqrt_two_over_pi * (g + 0.044715 * g * g * g)));
    out[i] = static_cast<float>(gelu) * up[i];
  }
}

}  // namespace hlwq
#endif  // HWY_ONCE
