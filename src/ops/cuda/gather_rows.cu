// Embedding lookup for every weight format: out[i, :] = scale * row tokens[i] as floats, with the
// CPU's dequantize_linear_row arithmetic (AffineArithmetic::dequantize) so GPU and CPU embeddings
// agree bit for bit: HLWQ decodes c[q] * (gain / d), runs the same Sylvester-order butterflies
// (strides 1, 2, 4, ...: x + y, x - y) and multiplies by the signs; MLX rounds s q and then the sum
// to the scale dtype (mx.dequantize); INT4 and dense values are exact. A token outside [0, rows)
// writes a row of zeros.
#include "ops/cuda/weight_decode.cuh"

namespace hlwq::cuda::kernels {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ bool valid_token(int32_t token, int64_t rows) { return token >= 0 && token < rows; }

// One CTA per (block, token), one thread per code of the block.
template <int kBits>
__global__ void hlwq_gather_kernel(HlwqView weight, const int32_t* tokens, float scale, float* out, int block_log2) {
  extern __shared__ float values[];
  const int i = threadIdx.x;
  const int64_t block_index = blockIdx.x, token_index = blockIdx.y;
  const int64_t column = block_index * weight.block + i;
  const int32_t token = tokens[token_index];
  float* out_row = out + token_index * weight.columns;
  if (!valid_token(token, weight.rows)) {
    if (column < weight.columns) out_row[column] = 0.0f;
    return;
  }
  const uint8_t* block_codes = weight.codes + token * weight.code_bytes + block_index * (weight.block * kBits / 8);
  const float gain = __half2float(__ushort_as_half(weight.gains[token * weight.blocks + block_index]));
  const float block_scale = weight.rotate ? gain / static_cast<float>(weight.block) : gain * weight.identity_scale;
  float v = weight.centroids[hlwq_code_at<kBits>(block_codes, i, block_log2)] * block_scale;
  if (weight.rotate) {
    v = sylvester_hadamard(v, values, i, weight.block);
    if (weight.signs != nullptr) v *= weight.signs[column];
  }
  if (column < weight.columns) out_row[column] = scale * v;
}

__global__ void affine_gather_kernel(AffineView weight, const int32_t* tokens, float scale, float* out) {
  const int64_t column = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (column >= weight.columns) return;
  const int32_t token = tokens[blockIdx.y];
  float* out_row = out + static_cast<int64_t>(blockIdx.y) * weight.columns;
  if (!valid_token(token, weight.rows)) {
    out_row[column] = 0.0f;
    return;
  }
  const uint32_t* row_words = weight.packed + token * (weight.columns * weight.bits / 32);
  const int64_t group = token * (weight.columns / weight.group) + column / weight.group;
  const float group_scale = stored_float(weight.scales, group, weight.scale_type);
  const float bias = stored_float(weight.biases, group, weight.scale_type);
  const float code = small_uint_to_float(affine_code_at(row_words, column, weight.bits));
  const float product = round_to_stored(__fmul_rn(group_scale, code), weight.scale_type);
  out_row[column] = scale * round_to_stored(__fadd_rn(product, bias), weight.scale_type);
}

__global__ void int4_gather_kernel(Int4View weight, const int32_t* tokens, float scale, float* out) {
  const int64_t column = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (column >= weight.columns) return;
  const int32_t token = tokens[blockIdx.y];
  float* out_row = out + static_cast<int64_t>(blockIdx.y) * weight.columns;
  if (!valid_token(token, weight.rows)) {
    out_row[column] = 0.0f;
    return;
  }
  const uint32_t word = weight.packed[token * (weight.columns / 8) + column / 8];
  const float group_scale =
      stored_float(weight.scales, token * (weight.columns / weight.group) + column / weight.group, weight.scale_type);
  const float value = (__uint_as_float(0x4B000000u | ((word >> (4 * (column % 8))) & 15u)) - 8388616.0f) * group_scale;
  out_row[column] = scale * value;
}

__global__ void dense_gather_kernel(DenseView weight, const int32_t* tokens, float scale, float* out) {
  const int64_t column = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (column >= weight.columns) return;
  const int32_t token = tokens[blockIdx.y];
  float* out_row = out + static_cast<int64_t>(blockIdx.y) * weight.columns;
  out_row[column] =
      valid_token(token, weight.rows) ? scale * stored_float(weight.data, token * weight.columns + column, weight.element)
                                      : 0.0f;
}

dim3 column_grid(int64_t columns, int64_t count) {
  return dim3(static_cast<unsigned>((columns + kThreads - 1) / kThreads), static_cast<unsigned>(count));
}

}  // namespace

void hlwq_gather_rows(const HlwqView& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                      cudaStream_t stream) {
  if (count == 0) return;
  using Kernel = void (*)(HlwqView, const int32_t*, float, float*, int);
  constexpr Kernel kByBits[] = {nullptr,
                                nullptr,
                                hlwq_gather_kernel<2>,
                                hlwq_gather_kernel<3>,
                                hlwq_gather_kernel<4>,
                                hlwq_gather_kernel<5>,
                                hlwq_gather_kernel<6>,
                                hlwq_gather_kernel<7>,
                                hlwq_gather_kernel<8>};
  const dim3 grid(static_cast<unsigned>(weight.blocks), static_cast<unsigned>(count));
  kByBits[weight.bits]<<<grid, weight.block, weight.block * sizeof(float), stream>>>(weight, tokens, scale, out,
                                                                                   log2_of_block(weight.block));
  check_launch("HLWQ gather_rows");
}

void affine_gather_rows(const AffineView& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                        cudaStream_t stream) {
  if (count == 0) return;
  affine_gather_kernel<<<column_grid(weight.columns, count), kThreads, 0, stream>>>(weight, tokens, scale, out);
  check_launch("MLX affine gather_rows");
}

void int4_gather_rows(const Int4View& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                      cudaStream_t stream) {
  if (count == 0) return;
  int4_gather_kernel<<<column_grid(weight.columns, count), kThreads, 0, stream>>>(weight, tokens, scale, out);
  check_launch("INT4 gather_rows");
}

void dense_gather_rows(const DenseView& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                       cudaStream_t stream) {
  if (count == 0) return;
  dense_gather_kernel<<<column_grid(weight.columns, count), kThreads, 0, stream>>>(weight, tokens, scale, out);
  check_launch("dense gather_rows");
}

}  // namespace hlwq::cuda::kernels
