#include "ops/gated_rms_norm.h"

#include <cmath>

#include "core/error.h"

namespace hlwq {

void gated_rms_norm(std::span<const float> x, std::span<const float> z, std::span<const float> weight, double eps,
                    std::span<float> out) {
  const size_t width = weight.size();
  check(width > 0 && x.size() % width == 0 && z.size() == x.size() && out.size() == x.size(),
        "gated_rms_norm: sizes ", x.size(), "/", z.size(), "/", out.size(), " are not rows of ", width);
  const size_t rows = x.size() / width;
  for (size_t r = 0; r < rows; ++r) {
    const float* in = x.data() + r * width;
    const float* gate = z.data() + r * width;
    float* o = out.data() + r * width;
    double squares = 0;
    for (size_t i = 0; i < width; ++i) squares += double{in[i]} * in[i];
    const float inverse_rms = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(width) + eps));
    for (size_t i = 0; i < width; ++i) {
      const float silu = gate[i] / (1.0f + std::exp(-gate[i]));
      o[i] = in[i] * inverse_rms * weight[i] * silu;
    }
  }
}

}  // namespace hlwq
