#include "ops/partial_rotary_embedding.h"

#include <cmath>

#include "core/error.h"

namespace hlwq {

std::vector<double> partial_rotary_inverse_frequencies(int64_t rotary_dim, double theta) {
  check(rotary_dim > 0 && rotary_dim % 2 == 0, "rotary dimension ", rotary_dim, " is not a positive even number");
  check(theta > 0, "rope theta ", theta, " is not positive");
  std::vector<double> inverse(static_cast<size_t>(rotary_dim / 2));
  for (size_t i = 0; i < inverse.size(); ++i) {
    inverse[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rotary_dim));
  }
  return inverse;
}

void apply_partial_rotary(std::span<float> x, int64_t head_dim, int64_t rotary_dim, int64_t position,
                          std::span<const double> inverse_frequencies) {
  check(head_dim > 0 && x.size() % static_cast<size_t>(head_dim) == 0, "partial rotary: ", x.size(),
        " values are not heads of ", head_dim);
  check(rotary_dim > 0 && rotary_dim <= head_dim && rotary_dim % 2 == 0 &&
            inverse_frequencies.size() == static_cast<size_t>(rotary_dim / 2),
        "partial rotary: rotary_dim ", rotary_dim, " with ", inverse_frequencies.size(),
        " frequencies does not fit head_dim ", head_dim);
  const int64_t half = rotary_dim / 2;
  const size_t heads = x.size() / static_cast<size_t>(head_dim);
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inverse_frequencies[i];
    const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    for (size_t h = 0; h < heads; ++h) {
      float* head = x.data() + h * head_dim;
      const float first = head[i], second = head[i + half];
      head[i] = first * c - second * s;
      head[i + half] = second * c + first * s;
    }
  }
}

}  // namespace hlwq
