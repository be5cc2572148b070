#include "ops/cuda/read_bandwidth.h"

#include <algorithm>
#include <cstdint>

#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/device_buffer.h"

namespace hlwq::cuda {

namespace {

// Each thread reads 4 uint4 per iteration (64 bytes in flight) and folds them into one word; one
// word per thread is written, so the reads cannot be dropped.
__global__ void read_kernel(const uint4* data, size_t count, uint32_t* sink) {
  uint32_t sum = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < count; i += 4 * stride) {
    const uint4 a = data[i], b = data[i + stride], c = data[i + 2 * stride], d = data[i + 3 * stride];
    sum ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < count; i += stride) sum ^= data[i].x ^ data[i].y ^ data[i].z ^ data[i].w;
  sink[static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x] = sum;
}

struct DeviceBytes {
  explicit DeviceBytes(size_t bytes) { check_cuda(cudaMalloc(&data, bytes), "cudaMalloc"); }
  ~DeviceBytes() { cudaFree(data); }
  void* data = nullptr;
};

}  // namespace

double measure_read_bandwidth() {
  size_t free = 0, total = 0;
  check_cuda(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  const size_t bytes = free > (size_t{16} << 30) ? size_t{4} << 30 : size_t{1} << 30;
  DeviceBytes buffer(bytes);
  check_cuda(cudaMemset(buffer.data, 0x5a, bytes), "cudaMemset");
  int device = 0, multiprocessors = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device), "device attribute");
  const int threads = 512, blocks = multiprocessors * 4;
  DeviceBytes sink(static_cast<size_t>(threads) * blocks * sizeof(uint32_t));
  cudaEvent_t start = nullptr, stop = nullptr;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  double best = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {  // the first warms up
    cudaEventRecord(start);
    read_kernel<<<blocks, threads>>>(static_cast<const uint4*>(buffer.data), bytes / sizeof(uint4),
                                     static_cast<uint32_t*>(sink.data));
    cudaEventRecord(stop);
    check_cuda(cudaEventSynchronize(stop), "bandwidth read");
    float milliseconds = 0;
    cudaEventElapsedTime(&milliseconds, start, stop);
    if (attempt > 0) best = std::max(best, static_cast<double>(bytes) / (milliseconds * 1e-3));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

}  // namespace hlwq::cuda
