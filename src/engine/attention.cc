#include "engine/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace hlwq {

void softmax(std::span<float> x) {
  const float maximum = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float& value : x) {
    value = std::exp(value - maximum);
    sum += value;
  }
  const float inverse = static_cast<float>(1.0 / sum);
  for (float& value : x) value *= inverse;
}

void causal_attention(std::span<const float> queries, int64_t tokens, int64_t start_position, int64_t layer,
                      const KvCache& cache, const AttentionShape& shape, std::span<float> out, ThreadPool& pool) {
  const int64_t head_dim = shape.head_dim;
  const int64_t width = shape.heads * head_dim;
  const int64_t group = shape.heads / shape.kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  pool.parallel_for(static_cast<size_t>(tokens * shape.heads), [&](size_t begin, size_t end) {
    std::vector<float> scores, row(head_dim);
    std::vector<double> sum(head_dim);
    for (size_t task = begin; task < end; ++task) {
      const int64_t token = static_cast<int64_t>(task) / shape.heads;
      const int64_t head = static_cast<int64_t>(task) % shape.heads;
      const int64_t last_position = start_position + token;
      const int64_t kv_offset = (head / group) * head_dim;
      const float* query = queries.data() + token * width + head * head_dim;
      scores.resize(last_position + 1);
      for (int64_t position = 0; position <= last_position; ++position) {
        cache.read_key(layer, position, kv_offset, row);
        double dot = 0;
        for (int64_t i = 0; i < head_dim; ++i) dot += static_cast<double>(query[i]) * row[i];
        scores[position] = static_cast<float>(dot * scale);
      }
      softmax(scores);
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t position = 0; position <= last_position; ++position) {
        cache.read_value(layer, position, kv_offset, row);
        for (int64_t i = 0; i < head_dim; ++i) sum[i] += static_cast<double>(scores[position]) * row[i];
      }
      float* output = out.data() + token * width + head * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) output[i] = static_cast<float>(sum[i]);
    }
  });
}

}  // namespace hlwq
