#include "ops/rms_norm.h"

#include <cmath>

namespace hlwq {

void rms_norm(std::span<const float> x, std::span<const float> weight, double eps, std::span<float> out) {
  const size_t width = weight.size();
  for (size_t row = 0; row + width <= x.size(); row += width) {
    double sum_of_squares = 0;
    for (size_t i = 0; i < width; ++i) sum_of_squares += static_cast<double>(x[row + i]) * x[row + i];
    const float scale = static_cast<float>(1.0 / std::sqrt(sum_of_squares / static_cast<double>(width) + eps));
    for (size_t i = 0; i < width; ++i) out[row + i] = weight[i] * (x[row + i] * scale);
  }
}

}  // namespace hlwq
