#include "ops/cuda/read_bandwidth.h"

#include <algorithm>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_linear.h"
#include "ops/cuda/linear_kernels.h"

namespace hlwq::cuda {

double measure_read_bandwidth() {
  size_t free = 0, total = 0;
  check_cuda(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  const size_t bytes = free > (size_t{16} << 30) ? size_t{4} << 30 : size_t{1} << 30;
  DeviceBytes buffer(bytes);
  check_cuda(cudaMemset(buffer.data(), 0, bytes), "cudaMemset");
  DeviceBytes sum(sizeof(float));
  cudaEvent_t start = nullptr, stop = nullptr;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  double best = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {  // the first warms up
    check_cuda(cudaEventRecord(start), "cudaEventRecord");
    kernels::streaming_read_sum(buffer.as<float>(), bytes / sizeof(float), sum.as<float>(), nullptr);
    check_cuda(cudaEventRecord(stop), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "bandwidth read");
    float milliseconds = 0;
    check_cuda(cudaEventElapsedTime(&milliseconds, start, stop), "cudaEventElapsedTime");
    if (attempt > 0) best = std::max(best, static_cast<double>(bytes) / (milliseconds * 1e-3));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

}  // namespace hlwq::cuda
