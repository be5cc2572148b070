// Linear layers on the GPU for every weight format, native: the weight stays in its own storage
// format in GPU memory (HLWQ packed code planes + fp16 gains, MLX affine words + scales/biases, CT
// INT4 nibbles + scales, dense F32/F16/BF16); no dequantized matrix is kept.
//
// Decode (batch 1..16) runs one GEMV kernel per format that reads each weight byte once for all
// rows of x (docs/KERNELS.md, "GPU"). Prefill (batch > 16) writes one panel of rows at a time as
// BF16 (tensor cores) or F32 (exact) into the workspace and multiplies it with cuBLAS. Every path is
// tested against the CPU's linear_forward_reference (tests/ops/cuda/device_linear_test.cc).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "ops/cuda/linear_kernels.h"
#include "ops/linear_weight.h"

namespace hlwq::cuda {

// GPU memory of `bytes` bytes, freed on destruction (cudaMalloc / cudaFree).
class DeviceBytes {
 public:
  DeviceBytes() = default;
  explicit DeviceBytes(uint64_t bytes);
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  DeviceBytes(DeviceBytes&& other) noexcept;
  DeviceBytes& operator=(DeviceBytes&& other) noexcept;
  ~DeviceBytes();

  void* data() const { return data_; }
  uint64_t size() const { return size_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  uint64_t size_ = 0;
};

// A linear weight held in GPU memory in its own storage format. Uploading keeps the bytes as they
// are (MLX and INT4 scales go back to the file's dtype: BF16 scales are half the bytes of floats).
class DeviceLinear {
 public:
  // Uploads (synchronously); throws hlwq::Error naming what it cannot run.
  explicit DeviceLinear(const LinearWeight& weight);
  DeviceLinear(DeviceLinear&&) noexcept = default;
  DeviceLinear& operator=(DeviceLinear&&) noexcept = default;
  DeviceLinear(const DeviceLinear&) = delete;
  DeviceLinear& operator=(const DeviceLinear&) = delete;

  int64_t rows() const { return rows_; }
  int64_t columns() const { return columns_; }
  LinearFormat format() const { return format_; }
  uint64_t device_bytes() const;  // GPU memory this weight holds

  // The kernels' views of the buffers (one is meaningful, by format()).
  const kernels::HlwqView& hlwq_view() const { return hlwq_; }
  const kernels::AffineView& affine_view() const { return affine_; }
  const kernels::Int4View& int4_view() const { return int4_; }
  const kernels::DenseView& dense_view() const { return dense_; }
  // HLWQ weights with equal keys rotate x the same way (block, rotation, signs).
  struct RotationKey {
    int64_t columns = 0;
    int block = 0;
    bool rotate = false;
    std::optional<uint64_t> sign_seed;
    bool operator==(const RotationKey&) const = default;
  };
  const RotationKey& rotation_key() const { return rotation_key_; }

 private:
  LinearFormat format_ = LinearFormat::dense;
  int64_t rows_ = 0;
  int64_t columns_ = 0;
  DeviceBytes main_;       // codes / packed words / dense data
  DeviceBytes scales_;     // HLWQ gains / group scales
  DeviceBytes biases_;     // MLX biases
  DeviceBytes constants_;  // HLWQ codebook then padded signs
  kernels::HlwqView hlwq_;
  kernels::AffineView affine_;
  kernels::Int4View int4_;
  kernels::DenseView dense_;
  RotationKey rotation_key_;
};

// How the prefill path (batch > kMaxGemvBatch) multiplies: BF16 tensor cores (weights and x
// rounded to BF16, FP32 accumulation; ~1e-2 relative) or FP32 (F32 scratch + SGEMM without TF32;
// matches the CPU to float rounding, what perplexity comparisons need).
enum class PrefillPrecision { bf16_tensor_cores, fp32 };

// Scratch the products need (rotated activations, fp16 activation pairs, BF16 activations, a panel of dequantized rows for
// prefill, the cuBLAS handle and its workspace). Grows on demand. After a call has grown it for
// given shapes, later calls with the same shapes allocate nothing and synchronize nothing, so a
// decode step can be captured in a CUDA graph. Not thread-safe: one workspace per stream.
class LinearWorkspace {
 public:
  LinearWorkspace();
  ~LinearWorkspace();
  LinearWorkspace(const LinearWorkspace&) = delete;
  LinearWorkspace& operator=(const LinearWorkspace&) = delete;

  uint64_t device_bytes() const;

  PrefillPrecision prefill_precision() const { return prefill_precision_; }
  void set_prefill_precision(PrefillPrecision precision) { prefill_precision_ = precision; }
  // The HLWQ decode kernel's version (kernels::GemvVersion): the faster one per batch by default,
  // either one on demand to compare them (bench/cuda/linear_versions.cc).
  kernels::GemvVersion gemv_version() const { return gemv_version_; }
  void set_gemv_version(kernels::GemvVersion version) { gemv_version_ = version; }

  // Buffers of at least `bytes` (contents undefined); reallocated only when larger ones are needed.
  void* rotated(uint64_t bytes) { return grow(rotated_, bytes); }
  // x as fp16 pairs (and per-64-column sums) for the 4-bit MLX / INT4 GEMV version 4.
  void* activation_pairs(uint64_t bytes) { return grow(activation_pairs_, bytes); }
  void* activations_bf16(uint64_t bytes) { return grow(activations_bf16_, bytes); }
  void* weight_panel(uint64_t bytes) { return grow(weight_panel_, bytes); }
  // The cuBLAS handle (created on first use), bound to `stream`.
  void* cublas(cudaStream_t stream);

 private:
  static void* grow(DeviceBytes& buffer, uint64_t bytes);

  PrefillPrecision prefill_precision_ = PrefillPrecision::fp32;
  kernels::GemvVersion gemv_version_ = kernels::GemvVersion::best_measured;
  DeviceBytes rotated_;
  DeviceBytes activation_pairs_;
  DeviceBytes activations_bf16_;
  DeviceBytes weight_panel_;
  DeviceBytes cublas_workspace_;
  void* cublas_ = nullptr;  // cublasHandle_t
};

// y = x W^T. x: batch x columns F32, y: batch x rows F32, both device memory, row-major; any batch
// >= 1 (0 is a no-op). Enqueued on `stream`, no host synchronization.
void linear_forward(const DeviceLinear& weight, const float* x, int64_t batch, float* y, LinearWorkspace& workspace,
                    cudaStream_t stream);

// Several weights of the same columns applied to one x (q/k/v; gate/up): ys[i] = x weights[i]^T.
// HLWQ weights with the same rotation share one rotated x. Throws hlwq::Error when counts or
// columns differ.
void linear_forward_group(std::span<const DeviceLinear* const> weights, const float* x, int64_t batch,
                          std::span<float* const> ys, LinearWorkspace& workspace, cudaStream_t stream);

// Embedding lookup: out[i, :] = scale * row tokens[i] of the weight as floats, exactly as the CPU's
// dequantize_linear_row(weight, row, out, AffineArithmetic::dequantize) gives it; tokens: int32 in
// device memory; a token outside [0, rows) writes zeros (the host checks tokens before).
void gather_rows(const DeviceLinear& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                 cudaStream_t stream);

}  // namespace hlwq::cuda
