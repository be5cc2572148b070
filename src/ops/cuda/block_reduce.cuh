// Reductions over one thread block (every thread gets the result), for the kernels of ops/cuda/.
// `shared` holds one value per warp; each call syncs before writing it, so calls may follow each
// other with the same `shared`.
#pragma once

#include <cuda_runtime.h>

namespace hlwq::cuda {

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

__device__ inline float block_max(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float maximum = shared[0];
  for (int w = 1; w < static_cast<int>(blockDim.x + 31) / 32; ++w) maximum = fmaxf(maximum, shared[w]);
  return maximum;
}

}  // namespace hlwq::cuda
