#include "ops/cuda/kv_cache_kernels.h"

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/launch.cuh"

namespace hlwq::cuda {

namespace {

constexpr int kAttentionThreads = 128;
constexpr int kChunk = 256;         // positions scored per round of the online softmax
constexpr int kMaxHeadDim = 512;  // each of the 128 threads accumulates up to 4 dimensions
constexpr int kDimsPerThread = kMaxHeadDim / kAttentionThreads;

__device__ inline float to_float(float value) { return value; }
__device__ inline float to_float(__half value) { return __half2float(value); }
__device__ inline float to_float(__nv_bfloat16 value) { return __bfloat162float(value); }

template <class T>
__device__ inline T from_float(float value);
template <>
__device__ inline float from_float<float>(float value) { return value; }
template <>
__device__ inline __half from_float<__half>(float value) { return __float2half_rn(value); }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float value) { return __float2bfloat16_rn(value); }

__device__ inline int64_t row_index(const DeviceKvCache& cache, int64_t sequence, int64_t layer, int64_t position) {
  return ((sequence * cache.layers + layer) * cache.context + position) * (cache.kv_heads * cache.head_dim);
}

template <class T>
__global__ void store_kernel(DeviceKvCache cache, int64_t layer, const float* keys, const float* values, int64_t rows,
                             const int32_t* places) {
  const int64_t width = cache.kv_heads * cache.head_dim;
  const int64_t total = rows * width;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / width, column = i % width;
    const int64_t sequence = places[2 * row], position = places[2 * row + 1];
    if (sequence < 0 || sequence >= cache.sequences || position < 0 || position >= cache.context) continue;
    const int64_t target = row_index(cache, sequence, layer, position) + column;
    static_cast<T*>(cache.keys)[target] = from_float<T>(keys[i]);
    static_cast<T*>(cache.values)[target] = from_float<T>(values[i]);
  }
}

// One block per (row, head, split). The query (times scale) sits in shared memory; each round
// scores up to kChunk positions (a warp per position, lanes across the head's dimensions), folds
// them into the running max and sum, and each thread adds the weighted values of its dimensions.
// With splits > 1 (decode of few rows over a long context, where rows x heads blocks would leave
// most of the GPU idle) split z takes the z-th of `splits` equal ranges of the row's positions and
// writes its unnormalized sums, max and sum to `partials` (head_dim + 2 floats) for
// combine_kernel; with one split the block writes the output itself.
template <class T>
__global__ void attention_kernel(DeviceKvCache cache, int64_t layer, const float* queries, int64_t heads, float scale,
                                 const int32_t* places, float* out, int64_t splits, float* partials) {
  __shared__ float query[kMaxHeadDim];
  __shared__ float scores[kChunk];
  __shared__ float reduction[32];
  const int64_t row = blockIdx.x, head = blockIdx.y, split = blockIdx.z;
  const int64_t head_dim = cache.head_dim;
  const int64_t sequence = places[2 * row], last = places[2 * row + 1];
  float* out_row = out + (row * heads + head) * head_dim;
  float* partial = splits > 1 ? partials + ((row * heads + head) * splits + split) * (head_dim + 2) : nullptr;
  if (sequence < 0 || sequence >= cache.sequences || last < 0 || last >= cache.context) {
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) (partial ? partial : out_row)[d] = 0;
    if (partial && threadIdx.x == 0) {
      partial[head_dim] = -INFINITY;
      partial[head_dim + 1] = 0;
    }
    return;
  }
  const int64_t kv_head = head / (heads / cache.kv_heads);
  const T* keys = static_cast<const T*>(cache.keys) + row_index(cache, sequence, layer, 0) + kv_head * head_dim;
  const T* values = static_cast<const T*>(cache.values) + row_index(cache, sequence, layer, 0) + kv_head * head_dim;
  const int64_t stride = cache.kv_heads * head_dim;
  const float* query_row = queries + (row * heads + head) * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) query[d] = query_row[d];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  float running_max = -INFINITY, running_sum = 0;
  float accumulator[kDimsPerThread] = {};
  const int64_t share = (last + 1 + splits - 1) / splits;
  const int64_t first = split * share, positions = min(last + 1, first + share);
  for (int64_t start = first; start < positions; start += kChunk) {
    const int count = static_cast<int>(positions - start < kChunk ? positions - start : kChunk);
    for (int p = warp; p < count; p += warps) {
      const T* key = keys + (start + p) * stride;
      float dot = 0;
      for (int64_t d = lane; d < head_dim; d += 32) dot += query[d] * to_float(key[d]);
      for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if (lane == 0) scores[p] = dot * scale;
    }
    __syncthreads();
    float local_max = -INFINITY;
    for (int p = threadIdx.x; p < count; p += blockDim.x) local_max = fmaxf(local_max, scores[p]);
    const float new_max = fmaxf(running_max, block_max(local_max, reduction));
    float local_sum = 0;
    for (int p = threadIdx.x; p < count; p += blockDim.x) {
      scores[p] = __expf(scores[p] - new_max);
      local_sum += scores[p];
    }
    const float chunk_sum = block_sum(local_sum, reduction);  // syncs: every weight is written
    const float correction = __expf(running_max - new_max);   // 0 on the first round
    running_sum = running_sum * correction + chunk_sum;
    running_max = new_max;
#pragma unroll
    for (int j = 0; j < kDimsPerThread; ++j) {
      const int64_t d = threadIdx.x + j * kAttentionThreads;
      if (d >= head_dim) break;
      float sum = accumulator[j] * correction;
      for (int p = 0; p < count; ++p) sum += scores[p] * to_float(values[(start + p) * stride + d]);
      accumulator[j] = sum;
    }
    __syncthreads();  // scores are rewritten by the next round
  }
  if (partial) {
#pragma unroll
    for (int j = 0; j < kDimsPerThread; ++j) {
      const int64_t d = threadIdx.x + j * kAttentionThreads;
      if (d < head_dim) partial[d] = accumulator[j];
    }
    if (threadIdx.x == 0) {
      partial[head_dim] = running_max;  // -inf for an empty range
      partial[head_dim + 1] = running_sum;
    }
    return;
  }
  const float inverse = 1.0f / running_sum;
#pragma unroll
  for (int j = 0; j < kDimsPerThread; ++j) {
    const int64_t d = threadIdx.x + j * kAttentionThreads;
    if (d < head_dim) out_row[d] = accumulator[j] * inverse;
  }
}

// One block per (row, head): the splits' partial softmax sums rescaled to their common max.
__global__ void combine_kernel(const float* partials, int64_t heads, int64_t head_dim, int64_t splits, float* out) {
  const int64_t row = blockIdx.x, head = blockIdx.y;
  const float* first = partials + (row * heads + head) * splits * (head_dim + 2);
  float maximum = -INFINITY;
  for (int64_t z = 0; z < splits; ++z) maximum = fmaxf(maximum, first[z * (head_dim + 2) + head_dim]);
  float total = 0;
  for (int64_t z = 0; z < splits; ++z) {
    const float* partial = first + z * (head_dim + 2);
    if (partial[head_dim] != -INFINITY) total += partial[head_dim + 1] * __expf(partial[head_dim] - maximum);
  }
  float* out_row = out + (row * heads + head) * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0;
    for (int64_t z = 0; z < splits; ++z) {
      const float* partial = first + z * (head_dim + 2);
      if (partial[head_dim] != -INFINITY) sum += partial[d] * __expf(partial[head_dim] - maximum);
    }
    out_row[d] = total > 0 ? sum / total : 0.0f;
  }
}

}  // namespace

void store_kv_rows(const DeviceKvCache& cache, int64_t layer, const float* keys, const float* values, int64_t rows,
                   const int32_t* places, cudaStream_t stream) {
  const int64_t total = rows * cache.kv_heads * cache.head_dim;
  if (total == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 65535));
  switch (cache.storage) {
    case CacheStorage::f32: store_kernel<float><<<blocks, 256, 0, stream>>>(cache, layer, keys, values, rows, places); break;
    case CacheStorage::f16: store_kernel<__half><<<blocks, 256, 0, stream>>>(cache, layer, keys, values, rows, places); break;
    case CacheStorage::bf16:
      store_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(cache, layer, keys, values, rows, places);
      break;
  }
  check_launch("store_kv_rows");
}

int64_t attention_splits(const DeviceKvCache& cache, int64_t rows, int64_t heads, int sm_count) {
  // Enough blocks for about four per SM, each range at least kChunk positions of a full context.
  const int64_t blocks = rows * heads;
  if (blocks >= 2 * sm_count) return 1;
  const int64_t wanted = (4 * int64_t{sm_count} + blocks - 1) / blocks;
  return std::max<int64_t>(1, std::min<int64_t>({wanted, cache.context / kChunk, 64}));
}

int64_t attention_partial_floats(const DeviceKvCache& cache, int64_t rows, int64_t heads, int64_t splits) {
  return splits > 1 ? rows * heads * splits * (cache.head_dim + 2) : 0;
}

void cache_attention(const DeviceKvCache& cache, int64_t layer, const float* queries, int64_t rows, int64_t heads,
                     float scale, const int32_t* places, float* out, cudaStream_t stream, int64_t splits,
                     float* partials) {
  if (rows == 0) return;
  check(splits >= 1 && (splits == 1 || partials != nullptr), "attention: ", splits, " splits without partials");
  check(cache.kv_heads > 0 && heads % cache.kv_heads == 0, "attention: ", heads, " heads over ", cache.kv_heads,
        " kv heads");
  check(cache.head_dim <= kMaxHeadDim, "attention: head_dim ", cache.head_dim, " above the GPU kernel's ",
        kMaxHeadDim);
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(heads), static_cast<unsigned>(splits));
  switch (cache.storage) {
    case CacheStorage::f32:
      attention_kernel<float>
          <<<grid, kAttentionThreads, 0, stream>>>(cache, layer, queries, heads, scale, places, out, splits, partials);
      break;
    case CacheStorage::f16:
      attention_kernel<__half>
          <<<grid, kAttentionThreads, 0, stream>>>(cache, layer, queries, heads, scale, places, out, splits, partials);
      break;
    case CacheStorage::bf16:
      attention_kernel<__nv_bfloat16>
          <<<grid, kAttentionThreads, 0, stream>>>(cache, layer, queries, heads, scale, places, out, splits, partials);
      break;
  }
  check_launch("cache_attention");
  if (splits > 1) {
    combine_kernel<<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(heads)), kAttentionThreads, 0, stream>>>(
        partials, heads, cache.head_dim, splits, out);
    check_launch("cache_attention (combine)");
  }
}

}  // namespace hlwq::cuda
