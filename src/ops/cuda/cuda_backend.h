// The CUDA backend: weights uploaded once in their storage format (ops/cuda/device_linear.h), the
// KV cache in GPU memory (ops/cuda/kv_cache_kernels.h), every op enqueued on one stream, and a pass
// recorded once as a CUDA graph and replayed (a decode step is then one launch). The host staging
// of a pass's tokens and places is the only host work between replays.
#pragma once

#include <memory>

#include "ops/backend.h"

namespace hlwq {

// Throws hlwq::Error when no GPU is visible.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace hlwq
