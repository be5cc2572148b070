// Softmax and causal grouped-query attention against written-out formulas.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"

namespace hlwq {
namespace {

TEST(Softmax, SumsToOneAndKeepsOrder) {
  std::vector<float> x = {1000.0f, 999.0f, 0.0f};  // no overflow thanks to the max shift
  softmax(x);
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0, 1e-6);
  EXPECT_NEAR(x[0] / x[1], std::exp(1.0), 1e-4);
}

TEST(Attention, CausalGroupedQueryAttention) {
  const int head_dim = 4, heads = 2, kv_heads = 1, tokens = 3;
  KvCache cache(1, kv_heads, head_dim, 8, DType::F32);
  const std::vector<float> keys = random_normal(tokens * head_dim, 6), values = random_normal(tokens * head_dim, 7);
  for (int p = 0; p < tokens; ++p) {
    cache.store(0, p, std::span(keys).subspan(p * head_dim, head_dim), std::span(values).subspan(p * head_dim, head_dim));
  }
  const std::vector<float> queries = random_normal(tokens * heads * head_dim, 8);
  std::vector<float> out(queries.size());
  ThreadPool pool(2);
  causal_attention(queries, tokens, 0, 0, cache, AttentionShape{heads, kv_heads, head_dim}, out, pool);
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      std::vector<double> weights(t + 1);
      double total = 0;
      for (int p = 0; p <= t; ++p) {
        double dot = 0;
        for (int i = 0; i < head_dim; ++i) dot += queries[(t * heads + h) * head_dim + i] * keys[p * head_dim + i];
        weights[p] = std::exp(dot / 2.0);  // sqrt(head_dim) = 2
        total += weights[p];
      }
      for (int i = 0; i < head_dim; ++i) {
        double expected = 0;
        for (int p = 0; p <= t; ++p) expected += weights[p] / total * values[p * head_dim + i];
        EXPECT_NEAR(out[(t * heads + h) * head_dim + i], expected, 1e-5);
      }
    }
  }
}

}  // namespace
}  // namespace hlwq
