#include "ops/attention_output_gate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace hlwq {

void split_query_and_gate(std::span<const float> projected, int64_t heads, int64_t head_dim, std::span<float> query,
                          std::span<float> gate) {
  check(heads > 0 && head_dim > 0, "split_query_and_gate: heads and head_dim must be positive");
  const size_t head_row = static_cast<size_t>(2 * head_dim);
  check(projected.size() % (head_row * heads) == 0 && query.size() * 2 == projected.size() &&
            gate.size() == query.size(),
        "split_query_and_gate: sizes ", projected.size(), "/", query.size(), "/", gate.size(), " do not fit ", heads,
        " heads of ", head_dim);
  const size_t rows = projected.size() / head_row;
  for (size_t r = 0; r < rows; ++r) {
    const float* source = projected.data() + r * head_row;
    std::copy_n(source, head_dim, query.data() + r * head_dim);
    std::copy_n(source + head_dim, head_dim, gate.data() + r * head_dim);
  }
}

void apply_sigmoid_gate(std::span<float> x, std::span<const float> gate) {
  check(x.size() == gate.size(), "apply_sigmoid_gate: ", x.size(), " values and ", gate.size(), " gates");
  for (size_t i = 0; i < x.size(); ++i) x[i] *= 1.0f / (1.0f + std::exp(-gate[i]));
}

}  // namespace hlwq
