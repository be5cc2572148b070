// The linear layers of the GPU forward: y = x W^T in FP32 through cuBLAS (no TF32, so products
// match the CPU's float arithmetic to rounding), x tokens x columns, W rows x columns, y tokens x
// rows, all row-major in device memory.
#pragma once

#include <cstdint>

namespace hlwq::cuda {

class Gemm {
 public:
  Gemm();  // throws hlwq::Error when cuBLAS cannot start (no GPU, no driver)
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  ~Gemm();

  void rows_times_weight(const float* x, int64_t tokens, const float* weight, int64_t rows, int64_t columns,
                         float* y) const;
  // Later products are enqueued on this stream (a cudaStream_t; nullptr: the default stream).
  void set_stream(void* stream);

 private:
  void* handle_ = nullptr;  // cublasHandle_t
};

}  // namespace hlwq::cuda
