#include "engine/activation.h"

#include <cmath>
#include <numbers>

namespace hlwq {

void silu_mul(std::span<const float> gate, std::span<const float> up, std::span<float> out) {
  for (size_t i = 0; i < gate.size(); ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
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
