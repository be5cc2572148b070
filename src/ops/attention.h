// Causal grouped-query attention over the KV cache: each query head h reads kv head
// h / (heads / kv_heads); scores q.k / sqrt(head_dim) (or another scale), softmax over positions 0..p, weighted sum of
// values. Plain loops, (token, head) pairs split across the thread pool.
#pragma once

#include <cstdint>
#include <span>

#include "core/thread_pool.h"
#include "ops/kv_cache.h"

namespace hlwq {

// In place: x becomes softmax(x) (max subtracted first; sums in double).
void softmax(std::span<float> x);

struct AttentionShape {
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  double scale = 0;  // scores are q.k * scale; 0: 1 / sqrt(head_dim)
};

// queries: tokens x heads*head_dim (RoPE applied); token t sits at start_position + t and the cache
// already holds this layer's keys and values up to start_position + tokens - 1.
// out: tokens x heads*head_dim.
void causal_attention(std::span<const float> queries, int64_t tokens, int64_t start_position, int64_t layer,
                      const KvCache& cache, const AttentionShape& shape, std::span<float> out, ThreadPool& pool);

}  // namespace hlwq
