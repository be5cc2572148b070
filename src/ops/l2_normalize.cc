#include "ops/l2_normalize.h"

#include <cmath>

#include "core/error.h"

namespace hlwq {

void l2_normalize(std::span<const float> x, int64_t row_size, double eps, float scale, std::span<float> out) {
  check(row_size > 0 && x.size() % static_cast<size_t>(row_size) == 0 && out.size() == x.size(),
        "l2_normalize: sizes ", x.size(), "/", out.size(), " are not rows of ", row_size);
  const size_t rows = x.size() / static_cast<size_t>(row_size);
  for (size_t r = 0; r < rows; ++r) {
    const float* in = x.data() + r * row_size;
    float* o = out.data() + r * row_size;
    // A few rows per token: the sum in double costs nothing and keeps the norm exact to float.
    double squares = 0;
    for (int64_t i = 0; i < row_size; ++i) squares += double{in[i]} * in[i];
    const float factor = static_cast<float>(scale / std::sqrt(squares + eps));
    for (int64_t i = 0; i < row_size; ++i) o[i] = in[i] * factor;
  }
}

}  // namespace hlwq
