// Host side of the GPU linear layers: uploading a LinearWeight as it is stored, choosing a kernel
// by small predicates (decode GEMV for batch <= 16, else a dequantized panel + cuBLAS), and the
// workspace that lets a decode step be captured in a CUDA graph.
#include "ops/cuda/device_linear.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"
#include "ops/cuda/device_buffer.h"

namespace hlwq::cuda {

namespace {

using kernels::StoredFloat;

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) fail("cuBLAS ", what, ": ", cublasGetStatusString(status));
}

DeviceBytes upload(const void* host, uint64_t bytes) {
  DeviceBytes buffer(bytes);
  if (bytes > 0) check_cuda(cudaMemcpy(buffer.data(), host, bytes, cudaMemcpyHostToDevice), "weight upload");
  return buffer;
}

StoredFloat stored_float_of(DType dtype, const char* what) {
  switch (dtype) {
    case DType::F32: return StoredFloat::f32;
    case DType::F16: return StoredFloat::f16;
    case DType::BF16: return StoredFloat::bf16;
    default: fail("GPU linear: ", what, " of dtype ", dtype_name(dtype), " (the GPU kernels take F32, F16 or BF16)");
  }
}

// Scales or biases held as floats on the host, back in the file's dtype (exact: they were rounded
// to it when loaded or quantized), padded to whole 32-bit words: the kernels load the word that
// holds a 2-byte value (kernels::stored_word).
DeviceBytes upload_in_dtype(const std::vector<float>& values, DType dtype) {
  const size_t stored = values.size() * dtype_size(dtype);
  std::vector<std::byte> bytes((stored + 3) / 4 * 4);
  convert_from_float(values, dtype, std::span<std::byte>(bytes).first(stored));
  return upload(bytes.data(), bytes.size());
}

// Elements of one prefill panel: 32 Mi values (64 MiB as BF16, 128 MiB as F32), so a 128256-row
// vocabulary projection runs in panels instead of needing a 1-2 GB scratch.
constexpr int64_t kPanelElements = int64_t{32} << 20;
constexpr uint64_t kCublasWorkspaceBytes = uint64_t{32} << 20;

}  // namespace

// ---- DeviceBytes ----

DeviceBytes::DeviceBytes(uint64_t bytes) : size_(bytes) {
  if (bytes > 0) check_cuda(cudaMalloc(&data_, bytes), "cudaMalloc");
}
DeviceBytes::DeviceBytes(DeviceBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
DeviceBytes& DeviceBytes::operator=(DeviceBytes&& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  return *this;
}
DeviceBytes::~DeviceBytes() {
  if (data_ != nullptr) cudaFree(data_);
}

// ---- DeviceLinear ----

DeviceLinear::DeviceLinear(const LinearWeight& weight)
    : format_(weight.format), rows_(weight.rows), columns_(weight.columns) {
  check(rows_ > 0 && columns_ > 0, "GPU linear: empty ", rows_, "x", columns_, " weight");
  check(rows_ <= 0x7fffffff && columns_ <= 0x7fffffff, "GPU linear: ", rows_, "x", columns_,
        " weight is too large for cuBLAS' int dimensions");
  switch (weight.format) {
    case LinearFormat::dense: {
      const StoredFloat element = stored_float_of(weight.dtype, "dense weight");
      check(weight.data.size() == static_cast<size_t>(rows_ * columns_) * dtype_size(weight.dtype),
            "GPU linear: dense weight has ", weight.data.size(), " bytes for ", rows_, "x", columns_, " ",
            dtype_name(weight.dtype));
      main_ = upload(weight.data.data(), weight.data.size());
      dense_ = {main_.data(), element, rows_, columns_};
      return;
    }
    case LinearFormat::hlwq: {
      check(weight.codec != nullptr, "GPU linear: HLWQ weight without a codec");
      const HlwqParams& params = weight.codec->params();
      const HlwqRowLayout& layout = weight.codec->layout();
      check(layout.columns == columns_, "GPU linear: HLWQ codec is for ", layout.columns, " columns, weight has ",
            columns_);
      check(weight.codes.size() == static_cast<size_t>(rows_) * layout.code_bytes &&
                weight.norms.size() == static_cast<size_t>(rows_ * layout.blocks) * sizeof(uint16_t),
            "GPU linear: HLWQ codes or gains do not match the ", rows_, "x", columns_, " weight");
      main_ = upload(weight.codes.data(), weight.codes.size());
      scales_ = upload(weight.norms.data(), weight.norms.size());
      // Codebook, then the padded signs (when seeded), in one buffer.
      std::vector<float> constants = weight.codec->codebook().centroids;
      check(constants.size() == (size_t{1} << params.bits), "GPU linear: HLWQ codebook has ", constants.size(),
            " entries for ", params.bits, " bits");
      const std::span<const float> signs = weight.codec->padded_signs();
      constants.insert(constants.end(), signs.begin(), signs.end());
      constants_ = upload(constants.data(), constants.size() * sizeof(float));
      const bool rotate = params.rotation == Rotation::hadamard;
      hlwq_.codes = main_.as<uint8_t>();
      hlwq_.gains = scales_.as<uint16_t>();
      hlwq_.centroids = constants_.as<float>();
      hlwq_.signs = signs.empty() ? nullptr : constants_.as<float>() + (size_t{1} << params.bits);
      hlwq_.rows = rows_;
      hlwq_.columns = columns_;
      hlwq_.bits = params.bits;
      hlwq_.block = params.block;
      hlwq_.blocks = layout.blocks;
      hlwq_.padded_columns = layout.blocks * params.block;
      hlwq_.code_bytes = static_cast<int64_t>(layout.code_bytes);
      hlwq_.rotate = rotate;
      hlwq_.identity_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(params.block)));
      rotation_key_ = {columns_, params.block, rotate, rotate ? params.sign_seed : std::nullopt};
      check(kernels::hlwq_gemv_applies(hlwq_, 1), "GPU linear: no HLWQ kernel for ", params.bits, " bits, block ",
            params.block);
      return;
    }
    case LinearFormat::trellis:
      fail("the CUDA backend has no kernel for trellis-coded weights (", rows_, "x", columns_,
           "); run this model with --backend cpu");
    case LinearFormat::mlx_affine: {
      const StoredFloat scale_type = stored_float_of(weight.dtype, "MLX scales");
      const int bits = weight.affine.bits, group = weight.affine.group_size;
      check(columns_ % 32 == 0 && group > 0 && columns_ % group == 0, "GPU linear: MLX weight of ", columns_,
            " columns with groups of ", group);
      const size_t groups = static_cast<size_t>(rows_ * (columns_ / group));
      check(weight.packed.size() == static_cast<size_t>(rows_ * columns_ * bits / 8) &&
                weight.scales.size() == groups && weight.biases.size() == groups,
            "GPU linear: MLX words, scales or biases do not match the ", rows_, "x", columns_, " weight");
      main_ = upload(weight.packed.data(), weight.packed.size());
      scales_ = upload_in_dtype(weight.scales, weight.dtype);
      biases_ = upload_in_dtype(weight.biases, weight.dtype);
      affine_ = {main_.as<uint32_t>(), scales_.data(), biases_.data(), scale_type, rows_, columns_, bits, group};
      check(kernels::affine_gemv_applies(affine_, 1), "GPU linear: no MLX affine kernel for ", bits,
            " bits, group size ", group, " (bits 2, 3, 4, 5, 6, 8; groups a multiple of 32)");
      return;
    }
    case LinearFormat::ct_int4: {
      const StoredFloat scale_type = stored_float_of(weight.dtype, "INT4 scales");
      const int group = weight.int4.group_size;
      check(group > 0 && columns_ % group == 0, "GPU linear: INT4 weight of ", columns_, " columns with groups of ",
            group);
      const size_t groups = static_cast<size_t>(rows_ * (columns_ / group));
      check(weight.packed.size() == static_cast<size_t>(rows_ * columns_ / 2) && weight.scales.size() == groups,
            "GPU linear: INT4 words or scales do not match the ", rows_, "x", columns_, " weight");
      main_ = upload(weight.packed.data(), weight.packed.size());
      scales_ = upload_in_dtype(weight.scales, weight.dtype);
      int4_ = {main_.as<uint32_t>(), scales_.data(), scale_type, rows_, columns_, group};
      check(kernels::int4_gemv_applies(int4_, 1), "GPU linear: no INT4 kernel for group size ", group,
            " (a multiple of 32)");
      return;
    }
  }
  fail("GPU linear: unknown weight format");
}

uint64_t DeviceLinear::device_bytes() const {
  return main_.size() + scales_.size() + biases_.size() + constants_.size();
}

// ---- LinearWorkspace ----

LinearWorkspace::LinearWorkspace() = default;

LinearWorkspace::~LinearWorkspace() {
  if (cublas_ != nullptr) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
}

uint64_t LinearWorkspace::device_bytes() const {
  return rotated_.size() + activation_pairs_.size() + activations_bf16_.size() + weight_panel_.size() +
         cublas_workspace_.size();
}

void* LinearWorkspace::grow(DeviceBytes& buffer, uint64_t bytes) {
  // cudaMalloc/cudaFree synchronize: only when a call needs more than any call before it.
  if (buffer.size() < bytes) {
    buffer = DeviceBytes();
    buffer = DeviceBytes(bytes);
  }
  return buffer.data();
}

void* LinearWorkspace::cublas(cudaStream_t stream) {
  if (cublas_ == nullptr) {
    cublasHandle_t handle = nullptr;
    check_cublas(cublasCreate(&handle), "cublasCreate");
    cublas_ = handle;
    // Default math: FP32 products never use TF32; BF16 products use tensor cores either way.
    check_cublas(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    // A workspace of our own, so cuBLAS allocates nothing during a (captured) call.
    cublas_workspace_ = DeviceBytes(kCublasWorkspaceBytes);
    check_cublas(cublasSetWorkspace(handle, cublas_workspace_.data(), cublas_workspace_.size()),
                 "cublasSetWorkspace");
  }
  const auto handle = static_cast<cublasHandle_t>(cublas_);
  check_cublas(cublasSetStream(handle, stream), "cublasSetStream");
  return handle;
}

// ---- Products ----

namespace {

bool gemv_applies(const DeviceLinear& weight, int64_t batch) {
  switch (weight.format()) {
    case LinearFormat::dense: return kernels::dense_gemv_applies(weight.dense_view(), batch);
    case LinearFormat::hlwq: return kernels::hlwq_gemv_applies(weight.hlwq_view(), batch);
    case LinearFormat::mlx_affine: return kernels::affine_gemv_applies(weight.affine_view(), batch);
    case LinearFormat::ct_int4: return kernels::int4_gemv_applies(weight.int4_view(), batch);
    case LinearFormat::trellis: return false;  // never a DeviceLinear: the constructor refuses it
  }
  return false;
}

// y (batch x weight rows, row-major; ldc = weight rows) for `rows` output rows from `first`:
// C^T = A (rows x k) times B^T (batch x k), in cuBLAS' column-major terms C = A^T B.
void panel_product(cublasHandle_t handle, bool bf16, const void* panel, int64_t rows, const void* activations,
                   int64_t batch, int64_t k, float* y, int64_t ldc) {
  const float one = 1.0f, zero = 0.0f;
  const int m = static_cast<int>(rows), n = static_cast<int>(batch), depth = static_cast<int>(k);
  if (bf16) {
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, depth, &one, panel, CUDA_R_16BF, depth,
                              activations, CUDA_R_16BF, depth, &zero, y, CUDA_R_32F, static_cast<int>(ldc),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (BF16)");
  } else {
    check_cublas(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, depth, &one, static_cast<const float*>(panel),
                             depth, static_cast<const float*>(activations), depth, &zero, y, static_cast<int>(ldc)),
                 "cublasSgemm");
  }
}

float* rotate_into_workspace(const DeviceLinear& weight, const float* x, int64_t batch, LinearWorkspace& workspace,
                             cudaStream_t stream) {
  const kernels::HlwqView& view = weight.hlwq_view();
  auto* rotated = static_cast<float*>(workspace.rotated(kernels::hlwq_rotated_bytes(view, batch)));
  kernels::hlwq_rotate_activations(view, x, batch, rotated, stream);
  return rotated;
}

// 4-bit MLX affine or INT4 (View): version 4 where wanted and it applies, else the format's own kernels.
template <class View, class OwnGemv>
void four_bit_gemv(const View& view, const float* x, int64_t batch, float* y, LinearWorkspace& workspace,
                   cudaStream_t stream, OwnGemv own_gemv) {
  const kernels::GemvVersion version = workspace.gemv_version();
  if (kernels::wants_tensor_core_pairs(version, batch) && kernels::nibble_pair_gemv_applies(view, batch)) {
    void* scratch = workspace.activation_pairs(kernels::nibble_pair_scratch_bytes(view.columns, batch));
    kernels::nibble_pair_gemv(view, x, batch, scratch, y, stream);
    return;
  }
  own_gemv(view, x, batch, y, version, stream);
}

void gemv(const DeviceLinear& weight, const float* x, const float* rotated, int64_t batch, float* y,
          LinearWorkspace& workspace, cudaStream_t stream) {
  const kernels::GemvVersion version = workspace.gemv_version();
  switch (weight.format()) {
    case LinearFormat::dense: kernels::dense_gemv(weight.dense_view(), x, batch, y, version, stream); return;
    case LinearFormat::hlwq: kernels::hlwq_gemv(weight.hlwq_view(), rotated, batch, y, version, stream); return;
    case LinearFormat::mlx_affine:
      four_bit_gemv(weight.affine_view(), x, batch, y, workspace, stream, kernels::affine_gemv);
      return;
    case LinearFormat::ct_int4:
      four_bit_gemv(weight.int4_view(), x, batch, y, workspace, stream, kernels::int4_gemv);
      return;
    case LinearFormat::trellis: fail("internal: trellis weight on the GPU");
  }
}

void prefill(const DeviceLinear& weight, const float* x, int64_t batch, float* y, LinearWorkspace& workspace,
             cudaStream_t stream) {
  const bool bf16 = workspace.prefill_precision() == PrefillPrecision::bf16_tensor_cores;
  const LinearFormat format = weight.format();
  // The activations the panels multiply: HLWQ products run in the rotated domain.
  const float* activations = x;
  int64_t depth = weight.columns();
  if (format == LinearFormat::hlwq) {
    activations = rotate_into_workspace(weight, x, batch, workspace, stream);
    depth = weight.hlwq_view().padded_columns;
  }
  const void* multiplied = activations;
  if (bf16) {
    void* converted = workspace.activations_bf16(static_cast<uint64_t>(batch * depth) * 2);
    kernels::floats_to_bf16(activations, batch * depth, converted, stream);
    multiplied = converted;
  }
  const auto handle = static_cast<cublasHandle_t>(workspace.cublas(stream));
  const kernels::DenseView& dense = weight.dense_view();
  // Dense weights already in the product's type are used in place.
  if (format == LinearFormat::dense &&
      dense.element == (bf16 ? kernels::StoredFloat::bf16 : kernels::StoredFloat::f32)) {
    panel_product(handle, bf16, dense.data, weight.rows(), multiplied, batch, depth, y, weight.rows());
    return;
  }
  const int64_t panel_rows = std::clamp<int64_t>(kPanelElements / depth, 1, weight.rows());
  void* panel = workspace.weight_panel(static_cast<uint64_t>(panel_rows * depth) * (bf16 ? 2 : 4));
  for (int64_t first = 0; first < weight.rows(); first += panel_rows) {
    const int64_t count = std::min(panel_rows, weight.rows() - first);
    switch (format) {
      case LinearFormat::dense: kernels::dense_convert(dense, first, count, panel, bf16, stream); break;
      case LinearFormat::hlwq:
        kernels::hlwq_dequantize_rotated(weight.hlwq_view(), first, count, panel, bf16, stream);
        break;
      case LinearFormat::mlx_affine:
        kernels::affine_dequantize(weight.affine_view(), first, count, panel, bf16, stream);
        break;
      case LinearFormat::ct_int4: kernels::int4_dequantize(weight.int4_view(), first, count, panel, bf16, stream); break;
      case LinearFormat::trellis: fail("internal: trellis weight on the GPU");
    }
    panel_product(handle, bf16, panel, count, multiplied, batch, depth, y + first, weight.rows());
  }
}

}  // namespace

void linear_forward(const DeviceLinear& weight, const float* x, int64_t batch, float* y, LinearWorkspace& workspace,
                    cudaStream_t stream) {
  check(batch >= 0, "GPU linear: negative batch ", batch);
  check(batch <= 0x7fffffff, "GPU linear: batch ", batch, " is too large");
  if (batch == 0) return;
  if (gemv_applies(weight, batch)) {
    const float* rotated =
        weight.format() == LinearFormat::hlwq ? rotate_into_workspace(weight, x, batch, workspace, stream) : nullptr;
    gemv(weight, x, rotated, batch, y, workspace, stream);
    return;
  }
  prefill(weight, x, batch, y, workspace, stream);
}

void linear_forward_group(std::span<const DeviceLinear* const> weights, const float* x, int64_t batch,
                          std::span<float* const> ys, LinearWorkspace& workspace, cudaStream_t stream) {
  check(weights.size() == ys.size(), "GPU linear group: ", weights.size(), " weights but ", ys.size(), " outputs");
  for (const DeviceLinear* weight : weights) {
    check(weight != nullptr, "GPU linear group: null weight");
    check(weight->columns() == weights[0]->columns(), "GPU linear group: weights of ", weights[0]->columns(),
          " and ", weight->columns(), " columns");
  }
  check(batch >= 0, "GPU linear group: negative batch ", batch);
  if (batch == 0) return;
  // Size the rotated activations once for the widest rotation, so the buffer does not move
  // between the weights that share it.
  uint64_t widest = 0;
  for (const DeviceLinear* weight : weights) {
    if (weight->format() == LinearFormat::hlwq) {
      widest = std::max(widest, kernels::hlwq_rotated_bytes(weight->hlwq_view(), batch));
    }
  }
  if (widest > 0) workspace.rotated(widest);
  const DeviceLinear::RotationKey* rotated_for = nullptr;
  const float* rotated = nullptr;
  for (size_t i = 0; i < weights.size(); ++i) {
    const DeviceLinear& weight = *weights[i];
    if (!gemv_applies(weight, batch)) {
      linear_forward(weight, x, batch, ys[i], workspace, stream);
      rotated_for = nullptr;  // the prefill path reuses the rotated buffer
      continue;
    }
    if (weight.format() == LinearFormat::hlwq &&
        (rotated_for == nullptr || !(*rotated_for == weight.rotation_key()))) {
      rotated = rotate_into_workspace(weight, x, batch, workspace, stream);
      rotated_for = &weight.rotation_key();
    }
    gemv(weight, x, rotated, batch, ys[i], workspace, stream);
  }
}

void gather_rows(const DeviceLinear& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                 cudaStream_t stream) {
  check(count >= 0 && count <= 65535, "gather_rows: ", count, " tokens (at most 65535 per call)");
  switch (weight.format()) {
    case LinearFormat::dense: kernels::dense_gather_rows(weight.dense_view(), tokens, count, scale, out, stream); return;
    case LinearFormat::hlwq: kernels::hlwq_gather_rows(weight.hlwq_view(), tokens, count, scale, out, stream); return;
    case LinearFormat::mlx_affine:
      kernels::affine_gather_rows(weight.affine_view(), tokens, count, scale, out, stream);
      return;
    case LinearFormat::ct_int4: kernels::int4_gather_rows(weight.int4_view(), tokens, count, scale, out, stream); return;
    case LinearFormat::trellis: fail("internal: trellis weight on the GPU");
  }
}

}  // namespace hlwq::cuda
