#include "ops/cuda/kv_cache_kernels.h"

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/device_buffer.h"

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

// One block per (row, head). The query (times scale) sits in shared memory; each round scores up
// to kChunk positions (a warp per position, lanes across the head's dimensions), folds them into
// the running max and sum, and each thread adds the weighted values of its dimensions.
template <class T>
__global__ void attention_kernel(DeviceKvCache cache, int64_t layer, const float* queries, int64_t heads, float scale,
                                 const int32_t* places, float* out) {
  __shared__ float query[kMaxHeadDim];
  __shared__ float scores[kChunk];
  __shared__ float reduction[32];
  const int64_t row = blockIdx.x, head = blockIdx.y;
  const int64_t head_dim = cache.head_dim;
  const int64_t sequence = places[2 * row], last = places[2 * row + 1];
  float* out_row = out + (row * heads + head) * head_dim;
  if (sequence < 0 || sequence >= cache.sequences || last < 0 || last >= cache.context) {
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) out_row[d] = 0;
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
  const int64_t positions = last + 1;
  for (int64_t start = 0; start < positions; start += kChunk) {
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
  const float inverse = 1.0f / running_sum;
#pragma unroll
  for (int j = 0; j < kDimsPerThread; ++j) {
    const int64_t d = threadIdx.x + j * kAttentionThreads;
    if (d < head_dim) out_row[d] = accumulator[j] * inverse;
  }
}

void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

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

void cache_attention(const DeviceKvCache& cache, int64_t layer, const float* queries, int64_t rows, int64_t heads,
                     float scale, const int32_t* places, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  check(cache.kv_heads > 0 && heads % cache.kv_heads == 0, "attention: ", heads, " heads over ", cache.kv_heads,
        " kv heads");
  check(cache.head_dim <= kMaxHeadDim, "attention: head_dim ", cache.head_dim, " above the GPU kernel's ",
        kMaxHeadDim);
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(heads));
  switch (cache.storage) {
    case CacheStorage::f32:
      attention_kernel<float><<<grid, kAttentionThreads, 0, stream>>>(cache, layer, queries, heads, scale, places, out);
      break;
    case CacheStorage::f16:
      attention_kernel<__half><<<grid, kAttentionThreads, 0, stream>>>(cache, layer, queries, heads, scale, places, out);
      break;
    case CacheStorage::bf16:
      attention_kernel<__nv_bfloat16>
          <<<grid, kAttentionThreads, 0, stream>>>(cache, layer, queries, heads, scale, places, out);
      break;
  }
  check_launch("cache_attention");
}

}  // namespace hlwq::cuda
