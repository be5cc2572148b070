#include <cublas_v2.h>

#include "core/error.h"
#include "ops/cuda/gemm.h"

namespace hlwq::cuda {

namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) fail("cuBLAS ", what, ": ", cublasGetStatusString(status));
}

int as_int(int64_t value, const char* what) {
  check(value > 0 && value <= 0x7fffffff, "GPU matrix product: ", what, " of ", value);
  return static_cast<int>(value);
}

}  // namespace

Gemm::Gemm() {
  cublasHandle_t handle = nullptr;
  check_cublas(cublasCreate(&handle), "cublasCreate");
  handle_ = handle;
  // Plain FP32 (the default math mode never uses TF32 tensor cores, which would round inputs to
  // 10-bit mantissas).
  check_cublas(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

Gemm::~Gemm() {
  if (handle_ != nullptr) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

void Gemm::rows_times_weight(const float* x, int64_t tokens, const float* weight, int64_t rows, int64_t columns,
                             float* y) const {
  // Column-major view: y^T (rows x tokens) = W (rows x columns, stored as columns x rows) ^T * x^T.
  const float one = 1.0f, zero = 0.0f;
  const int m = as_int(rows, "rows"), n = as_int(tokens, "tokens"), k = as_int(columns, "columns");
  check_cublas(cublasSgemm(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, weight, k,
                           x, k, &zero, y, m),
               "cublasSgemm");
}

}  // namespace hlwq::cuda

namespace hlwq::cuda {

void Gemm::set_stream(void* stream) {
  check_cublas(cublasSetStream(static_cast<cublasHandle_t>(handle_), static_cast<cudaStream_t>(stream)),
               "cublasSetStream");
}

}  // namespace hlwq::cuda
