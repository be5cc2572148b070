#pragma once
// What every elementwise CUDA kernel launch shares: the block size, a grid-stride grid that covers
// `count` items (capped, since the kernels loop over the rest), and the check after a launch.
#include <cstdint>

#include <cuda_runtime.h>

#include "ops/cuda/device_buffer.h"

namespace hlwq::cuda {

constexpr int kElementwiseThreads = 256;

// Enough blocks of kElementwiseThreads for `count` items, at most 65535 x 16 (a grid-stride loop
// covers the rest; more blocks than that only add scheduling cost).
inline int blocks_for(int64_t count) {
  const int64_t blocks = (count + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

// A launch's own errors (bad configuration, no kernel image for this card) surface here, named.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

}  // namespace hlwq::cuda
