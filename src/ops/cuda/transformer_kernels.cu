#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/transformer_kernels.h"

namespace hlwq::cuda {

namespace {

constexpr int kThreads = kElementwiseThreads;

// One block of kNormThreads per row. The squares are summed in double (the CPU's order is not
// kept, double makes the order immaterial at float precision). Each thread's loads are unrolled so
// a 4096-wide row is requested in one round trip: with 256 threads and a plain loop every thread
// waited for its 16 loads one after another (16 us a row measured on an H100, for 16 KB).
constexpr int kNormThreads = 1024;

__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const float* x, const float* weight, int64_t width, double eps, float* out) {
  __shared__ double partial[32];
  const float* row = x + blockIdx.x * width;
  float* out_row = out + blockIdx.x * width;
  double sum = 0;
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += static_cast<double>(row[i]) * row[i];
  sum = block_sum(sum, partial);
  const float scale = static_cast<float>(1.0 / sqrt(sum / static_cast<double>(width) + eps));
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) out_row[i] = weight[i] * (row[i] * scale);
}

__global__ void add_row_bias_kernel(float* rows, const float* bias, int64_t total, int64_t width) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    rows[i] += bias[i % width];
  }
}

__global__ void rope_kernel(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t half,
                            const int32_t* places, const float* cosines, const float* sines, int64_t max_positions) {
  const int64_t total = rows * heads * half;
  for (int64_t task = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; task < total;
       task += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = task % half;
    const int64_t head = (task / half) % heads;
    const int64_t row = task / (half * heads);
    const int64_t position = places[2 * row + 1];
    if (position < 0 || position >= max_positions) continue;
    const int64_t table = position * half + i;
    const float cosine = cosines[table], sine = sines[table];
    float* pair = x + (row * heads + head) * head_dim;
    const float first = pair[i], second = pair[i + half];
    pair[i] = first * cosine - second * sine;
    pair[i + half] = second * cosine + first * sine;
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

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t width, double eps, float* out,
                   cudaStream_t stream) {
  if (rows == 0) return;
  check(rows <= 0x7fffffff, "rms_norm_rows: ", rows, " rows");
  rms_norm_kernel<<<static_cast<unsigned>(rows), kNormThreads, 0, stream>>>(x, weight, width, eps, out);
  check_launch("rms_norm_rows");
}

void add_row_bias(float* rows, const float* bias, int64_t count, int64_t width, cudaStream_t stream) {
  if (count == 0 || width == 0) return;
  add_row_bias_kernel<<<blocks_for(count * width), kThreads, 0, stream>>>(rows, bias, count * width, width);
  check_launch("add_row_bias");
}

void apply_rope_at_places(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_half,
                          const int32_t* places, const float* cosines, const float* sines, int64_t max_positions,
                          cudaStream_t stream) {
  const int64_t total = rows * heads * rotary_half;
  if (total == 0) return;
  rope_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x, rows, heads, head_dim, rotary_half, places, cosines,
                                                          sines, max_positions);
  check_launch("apply_rope_at_places");
}

void silu_mul(float* gate, const float* up, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  silu_mul_kernel<<<blocks_for(count), kThreads, 0, stream>>>(gate, up, count);
  check_launch("silu_mul");
}

void gelu_tanh_mul(float* gate, const float* up, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  gelu_tanh_mul_kernel<<<blocks_for(count), kThreads, 0, stream>>>(gate, up, count);
  check_launch("gelu_tanh_mul");
}

void add_in_place(float* target, const float* addend, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  add_kernel<<<blocks_for(count), kThreads, 0, stream>>>(target, addend, count);
  check_launch("add_in_place");
}

void synchronize() { check_cuda(cudaDeviceSynchronize(), "kernel"); }

}  // namespace hlwq::cuda
