// The plain reference of one attention head (the SIMD kernel is
// ops/cpu/attention_head.cc).
#include "ops/attention_head.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace hlwq {

namespace {

// Row p of keys or values, widened to double.
void read_row(const AttentionHead& head, const std::byte* base, size_t position, std::vector<double>& row) {
  const size_t element = dtype_size(head.dtype);
  std::vector<float> floats(head.head_dim);
  convert_to_float(head.dtype, std::span(base + position * head.row_stride * element, head.head_dim * element), floats);
  std::copy(floats.begin(), floats.end(), row.begin());
}

}  // namespace

void attention_head_reference(const AttentionHead& head, std::span<float> out) {
  check(head.positions > 0 && out.size() >= head.head_dim, "internal: attention_head_reference needs positions and ",
        head.head_dim, " outputs");
  std::vector<double> row(head.head_dim), scores(head.positions), sum(head.head_dim, 0.0);
  for (size_t p = 0; p < head.positions; ++p) {
    read_row(head, head.keys, p, row);
    double dot = 0;
    for (size_t i = 0; i < head.head_dim; ++i) dot += static_cast<double>(head.query[i]) * row[i];
    scores[p] = dot * head.scale;
  }
  const double maximum = *std::max_element(scores.begin(), scores.end());
  double total = 0;
  for (double& score : scores) total += (score = std::exp(score - maximum));
  for (size_t p = 0; p < head.positions; ++p) {
    read_row(head, head.values, p, row);
    for (size_t i = 0; i < head.head_dim; ++i) sum[i] += scores[p] / total * row[i];
  }
  for (size_t i = 0; i < head.head_dim; ++i) out[i] = static_cast<float>(sum[i]);
}

}  // namespace hlwq
