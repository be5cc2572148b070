// CUDA device discovery: how many GPUs this process can use (0 when there is no driver/GPU).
#include <cuda_runtime.h>

#include "ops/cuda/device_info.h"

namespace hlwq::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return count;
}

}  // namespace hlwq::cuda
