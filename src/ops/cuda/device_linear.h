// A linear weight on the GPU and its products. This version keeps each weight dequantized to F32
// and multiplies with cuBLAS FP32: the plain GPU reference the packed-format kernels are checked
// against, at 4 bytes per weight of GPU memory.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include <cuda_runtime_api.h>

#include "ops/cuda/device_buffer.h"
#include "ops/linear_weight.h"

namespace hlwq::cuda {

class DeviceLinear {
 public:
  explicit DeviceLinear(const LinearWeight& weight);
  int64_t rows() const { return rows_; }
  int64_t columns() const { return columns_; }
  uint64_t device_bytes() const { return matrix_.size() * sizeof(float); }
  const float* matrix() const { return matrix_.data(); }

 private:
  int64_t rows_ = 0, columns_ = 0;
  DeviceBuffer matrix_;
};

class LinearWorkspace {
 public:
  LinearWorkspace();
  ~LinearWorkspace();
  uint64_t device_bytes() const { return 0; }
  struct State;
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

void linear_forward(const DeviceLinear& weight, const float* x, int64_t batch, float* y, LinearWorkspace& workspace,
                    cudaStream_t stream);
void linear_forward_group(std::span<const DeviceLinear* const> weights, const float* x, int64_t batch,
                          std::span<float* const> ys, LinearWorkspace& workspace, cudaStream_t stream);
void gather_rows(const DeviceLinear& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                 cudaStream_t stream);

}  // namespace hlwq::cuda
