#include "ops/cuda/device_linear.h"

#include <vector>

#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/gemm.h"

namespace hlwq::cuda {

namespace {

__global__ void gather_kernel(const float* matrix, int64_t rows, int64_t columns, const int32_t* tokens, int64_t count,
                              float scale, float* out) {
  const int64_t total = count * columns;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t token = tokens[i / columns];
    out[i] = token >= 0 && token < rows ? matrix[token * columns + i % columns] * scale : 0.0f;
  }
}

}  // namespace

DeviceLinear::DeviceLinear(const LinearWeight& weight) : rows_(weight.rows), columns_(weight.columns) {
  std::vector<float> values(static_cast<size_t>(rows_ * columns_));
  for (int64_t row = 0; row < rows_; ++row) {
    dequantize_linear_row(weight, row, std::span<float>(values).subspan(row * columns_, columns_),
                          AffineArithmetic::matmul);
  }
  matrix_ = DeviceBuffer(values.size());
  matrix_.upload(values.data(), values.size());
}

struct LinearWorkspace::State {
  Gemm gemm;
};

LinearWorkspace::LinearWorkspace() : state_(std::make_unique<State>()) {}
LinearWorkspace::~LinearWorkspace() = default;

void linear_forward(const DeviceLinear& weight, const float* x, int64_t batch, float* y, LinearWorkspace& workspace,
                    cudaStream_t stream) {
  workspace.state().gemm.set_stream(stream);
  workspace.state().gemm.rows_times_weight(x, batch, weight.matrix(), weight.rows(), weight.columns(), y);
}

void linear_forward_group(std::span<const DeviceLinear* const> weights, const float* x, int64_t batch,
                          std::span<float* const> ys, LinearWorkspace& workspace, cudaStream_t stream) {
  check(weights.size() == ys.size(), "linear group of ", weights.size(), " weights and ", ys.size(), " outputs");
  for (size_t i = 0; i < weights.size(); ++i) linear_forward(*weights[i], x, batch, ys[i], workspace, stream);
}

void gather_rows(const DeviceLinear& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                 cudaStream_t stream) {
  const int64_t total = count * weight.columns();
  if (total == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 65535));
  gather_kernel<<<blocks, 256, 0, stream>>>(weight.matrix(), weight.rows(), weight.columns(), tokens, count, scale,
                                            out);
  check_cuda(cudaGetLastError(), "gather_rows");
}

}  // namespace hlwq::cuda
