#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/transformer_kernels.h"

namespace hlwq::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// Sum over the block; every thread gets the result. `shared` holds one value per warp.
template <class T>
__device__ T block_sum(T value, T* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x + 31) / 32; ++w) total += shared[w];
  return total;
}

__device__ float block_max(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float maximum = shared[0];
  for (int w = 1; w < static_cast<int>(blockDim.x + 31) / 32; ++w) maximum = fmaxf(maximum, shared[w]);
  return maximum;
}

__global__ void rms_norm_kernel(const float* x, const float* weight, int64_t width, double eps, float* out) {
  __shared__ double partial[32];
  const float* row = x + blockIdx.x * width;
  float* out_row = out + blockIdx.x * width;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += static_cast<double>(row[i]) * row[i];
  sum = block_sum(sum, partial);
  const float scale = static_cast<float>(1.0 / sqrt(sum / static_cast<double>(width) + eps));
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) out_row[i] = weight[i] * (row[i] * scale);
}

__global__ void add_row_bias_kernel(float* rows, const float* bias, int64_t total, int64_t width) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    rows[i] += bias[i % width];
  }
}

__global__ void rope_kernel(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t first_position,
                            const float* cosines, const float* sines) {
  const int64_t half = head_dim / 2;
  const int64_t total = tokens * heads * half;
  for (int64_t task = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; task < total;
       task += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = task % half;
    const int64_t head = (task / half) % heads;
    const int64_t token = task / (half * heads);
    const int64_t table = (first_position + token) * half + i;
    const float cosine = cosines[table], sine = sines[table];
    float* pair = x + (token * heads + head) * head_dim;
    const float first = pair[i], second = pair[i + half];
    pair[i] = first * cosine - second * sine;
    pair[i + half] = second * cosine + first * sine;
  }
}

__global__ void round_kernel(float* values, int64_t count, int bfloat) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    values[i] = bfloat ? __bfloat162float(__float2bfloat16_rn(values[i])) : __half2float(__float2half_rn(values[i]));
  }
}

// One block per (query token, head): scores of every visible position in shared memory, softmax,
// then each thread sums the value rows for some of the head's dimensions.
__global__ void attention_kernel(const float* queries, const float* keys, const float* values, int64_t first_position,
                                 int64_t heads, int64_t kv_heads, int64_t head_dim, float scale, float* out) {
  extern __shared__ float shared[];
  __shared__ float reduction[32];
  const int64_t token = blockIdx.x;
  const int64_t head = blockIdx.y;
  const int64_t positions = first_position + token + 1;
  const int64_t kv_width = kv_heads * head_dim;
  const int64_t kv_offset = (head / (heads / kv_heads)) * head_dim;
  float* query = shared;
  float* scores = shared + head_dim;
  const float* query_row = queries + (token * heads + head) * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) query[d] = query_row[d];
  __syncthreads();
  float local_max = -INFINITY;
  for (int64_t p = threadIdx.x; p < positions; p += blockDim.x) {
    const float* key = keys + p * kv_width + kv_offset;
    float dot = 0;
    for (int64_t d = 0; d < head_dim; ++d) dot += query[d] * key[d];
    scores[p] = dot * scale;
    local_max = fmaxf(local_max, scores[p]);
  }
  const float maximum = block_max(local_max, reduction);
  float local_sum = 0;
  for (int64_t p = threadIdx.x; p < positions; p += blockDim.x) {
    scores[p] = expf(scores[p] - maximum);
    local_sum += scores[p];
  }
  const float inverse = 1.0f / block_sum(local_sum, reduction);  // block_sum syncs: scores are complete
  float* out_row = out + (token * heads + head) * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0;
    for (int64_t p = 0; p < positions; ++p) sum += scores[p] * values[p * kv_width + kv_offset + d];
    out_row[d] = sum * inverse;
  }
}

__global__ void silu_mul_kernel(float* gate, const float* up, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void gelu_tanh_mul_kernel(float* gate, const float* up, int64_t count) {
  const double sqrt_two_over_pi = 0.7978845608028654;  // sqrt(2 / pi)
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const double g = gate[i];
    const double gelu = 0.5 * g * (1.0 + tanh(sqrt_two_over_pi * (g + 0.044715 * g * g * g)));
    gate[i] = static_cast<float>(gelu) * up[i];
  }
}

__global__ void add_kernel(float* target, const float* addend, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    target[i] += addend[i];
  }
}

}  // namespace

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t width, double eps, float* out) {
  if (rows == 0) return;
  check(rows <= 0x7fffffff, "rms_norm_rows: ", rows, " rows");
  rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads>>>(x, weight, width, eps, out);
  check_launch("rms_norm_rows");
}

void add_row_bias(float* rows, const float* bias, int64_t count, int64_t width) {
  if (count == 0 || width == 0) return;
  add_row_bias_kernel<<<blocks_for(count * width), kThreads>>>(rows, bias, count * width, width);
  check_launch("add_row_bias");
}

void apply_rope_rows(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t first_position,
                     const float* cosines, const float* sines) {
  const int64_t total = tokens * heads * (head_dim / 2);
  if (total == 0) return;
  rope_kernel<<<blocks_for(total), kThreads>>>(x, tokens, heads, head_dim, first_position, cosines, sines);
  check_launch("apply_rope_rows");
}

void round_to_storage(float* values, int64_t count, StorageRounding rounding) {
  if (rounding == StorageRounding::none || count == 0) return;
  round_kernel<<<blocks_for(count), kThreads>>>(values, count, rounding == StorageRounding::bf16 ? 1 : 0);
  check_launch("round_to_storage");
}

void causal_attention(const float* queries, const float* keys, const float* values, int64_t tokens,
                      int64_t first_position, int64_t heads, int64_t kv_heads, int64_t head_dim, double scale,
                      float* out) {
  if (tokens == 0) return;
  check(kv_heads > 0 && heads % kv_heads == 0, "attention: ", heads, " heads over ", kv_heads, " kv heads");
  const size_t shared_bytes = static_cast<size_t>(first_position + tokens + head_dim) * sizeof(float);
  int device = 0, limit = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "shared memory limit");
  check(shared_bytes + 32 * sizeof(float) <= static_cast<size_t>(limit), "attention over ", first_position + tokens,
        " positions needs more shared memory than the GPU has per block (", limit, " bytes)");
  check_cuda(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(shared_bytes)),
             "attention shared memory");
  const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(heads));
  attention_kernel<<<grid, 128, shared_bytes>>>(queries, keys, values, first_position, heads, kv_heads, head_dim,
                                                static_cast<float>(scale), out);
  check_launch("causal_attention");
}

void silu_mul(float* gate, const float* up, int64_t count) {
  if (count == 0) return;
  silu_mul_kernel<<<blocks_for(count), kThreads>>>(gate, up, count);
  check_launch("silu_mul");
}

void gelu_tanh_mul(float* gate, const float* up, int64_t count) {
  if (count == 0) return;
  gelu_tanh_mul_kernel<<<blocks_for(count), kThreads>>>(gate, up, count);
  check_launch("gelu_tanh_mul");
}

void add_in_place(float* target, const float* addend, int64_t count) {
  if (count == 0) return;
  add_kernel<<<blocks_for(count), kThreads>>>(target, addend, count);
  check_launch("add_in_place");
}

void synchronize() { check_cuda(cudaDeviceSynchronize(), "kernel"); }

}  // namespace hlwq::cuda
