#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/attention_head.h"

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
  const float scale =
      static_cast<float>(shape.scale != 0 ? shape.scale : 1.0 / std::sqrt(static_cast<double>(head_dim)));
  const size_t element = dtype_size(cache.dtype());
  const std::byte* keys = cache.layer_keys(layer).data();
  const std::byte* values = cache.layer_values(layer).data();
  // Later tokens attend over more positions, so contiguous ranges of (token,
  // head) tasks would give the last thread most of the work: each thread takes
  // every workers-th task instead.
  const size_t tasks = static_cast<size_t>(tokens * shape.heads);
  const size_t workers = std::min(tasks, static_cast<size_t>(pool.size()));
  pool.parallel_for(workers, [&](size_t first_worker, size_t last_worker) {
    std::vector<float> scores(static_cast<size_t>(start_position + tokens));
    for (size_t worker = first_worker; worker < last_worker; ++worker) {
      for (size_t task = worker; task < tasks; task += workers) {
        const int64_t token = static_cast<int64_t>(task) / shape.heads;
        const int64_t head = static_cast<int64_t>(task) % shape.heads;
        const size_t kv_offset = static_cast<size_t>((head / group) * head_dim) * element;
        AttentionHead input;
        input.query = queries.data() + token * width + head * head_dim;
        input.keys = keys + kv_offset;
        input.values = values + kv_offset;
        input.dtype = cache.dtype();
        input.row_stride = static_cast<size_t>(cache.row_width());
        input.positions = static_cast<size_t>(start_position + token + 1);
        input.head_dim = static_cast<size_t>(head_dim);
        input.scale = scale;
        attention_head(input, scores, out.subspan(token * width + head * head_dim, head_dim));
      }
    }
  });
}

}  // namespace hlwq
