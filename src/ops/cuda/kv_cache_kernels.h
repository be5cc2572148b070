// The KV cache on the GPU: storing a pass's keys and values at their places, and causal attention
// of each pass row over its own sequence's cached positions. The cache of each of K and V is
// sequences x layers x context x (kv_heads * head_dim) elements of F32, F16 or BF16, rounded to
// nearest even as the CPU's KvCache stores them (so both backends attend over the same keys).
// Tested against ops/kv_cache.h and ops/attention.h in tests/ops/cuda/kv_cache_kernels_test.cc.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace hlwq::cuda {

enum class CacheStorage { f32, f16, bf16 };

struct DeviceKvCache {
  void* keys = nullptr;
  void* values = nullptr;
  CacheStorage storage = CacheStorage::f16;
  int64_t sequences = 0, layers = 0, context = 0, kv_heads = 0, head_dim = 0;
};

// Row r of keys/values (rows x kv_heads*head_dim floats) goes to sequence places[2r], position
// places[2r+1] of `layer`. A place outside the cache is skipped (the host checks places first).
void store_kv_rows(const DeviceKvCache& cache, int64_t layer, const float* keys, const float* values, int64_t rows,
                   const int32_t* places, cudaStream_t stream);

// out row r, head h = softmax over positions 0..places[2r+1] of sequence places[2r] of
// (q . k) * scale, times v; query head h reads kv head h / (heads / kv_heads). Online softmax over
// chunks of positions (any context length, fixed shared memory); one block per (row, head), or per
// (row, head, split) with splits > 1: each split takes an equal share of the row's positions into
// `partials` (attention_partial_floats of them), and a second kernel combines them (split-KV decode).
void cache_attention(const DeviceKvCache& cache, int64_t layer, const float* queries, int64_t rows, int64_t heads,
                     float scale, const int32_t* places, float* out, cudaStream_t stream, int64_t splits = 1,
                     float* partials = nullptr);

// The splits that keep a GPU of sm_count SMs busy for `rows` rows of `heads` heads (1 when rows x
// heads blocks already do), chosen from sizes alone so a recorded pass keeps it at any position.
int64_t attention_splits(const DeviceKvCache& cache, int64_t rows, int64_t heads, int sm_count);
int64_t attention_partial_floats(const DeviceKvCache& cache, int64_t rows, int64_t heads, int64_t splits);

}  // namespace hlwq::cuda
