// CUDA device discovery, callable from host code compiled without nvcc.
#pragma once

namespace hlwq::cuda {

int device_count();

}  // namespace hlwq::cuda
