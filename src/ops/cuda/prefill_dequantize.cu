// Prefill (batch > 16) scratch: a panel of weight rows written out as F32 or BF16 for a cuBLAS
// product, one layer at a time (the workspace holds at most one panel; no dequantized matrix is
// kept). Each thread writes 8 consecutive values (one 16-byte BF16 store, two F32 stores).
// HLWQ is written in the rotated domain (gain * c[q], no inverse transform): the activations are
// rotated once instead. Cost: codes read once, 2 or 4 bytes written and read again by the GEMM per
// weight; at 512 tokens that is about a third of the product's time (docs/KERNELS.md).
#include "ops/cuda/weight_decode.cuh"

namespace hlwq::cuda::kernels {
namespace {

constexpr int kValuesPerThread = 8;
constexpr int kThreads = 256;

__device__ __forceinline__ void store_values(void* out, int64_t index, const float (&values)[kValuesPerThread],
                                             bool out_bf16) {
  if (out_bf16) {
    uint32_t packed[kValuesPerThread / 2];
#pragma unroll
    for (int i = 0; i < kValuesPerThread / 2; ++i) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(values[2 * i], values[2 * i + 1]);
      packed[i] = *reinterpret_cast<const uint32_t*>(&pair);
    }
    *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(out) + index) =
        make_uint4(packed[0], packed[1], packed[2], packed[3]);
  } else {
    float* destination = static_cast<float*>(out) + index;
    *reinterpret_cast<float4*>(destination) = make_float4(values[0], values[1], values[2], values[3]);
    *reinterpret_cast<float4*>(destination + 4) = make_float4(values[4], values[5], values[6], values[7]);
  }
}

inline unsigned grid_for(int64_t values) {
  return static_cast<unsigned>((values / kValuesPerThread + kThreads - 1) / kThreads);
}

template <int kBits>
__global__ void hlwq_dequantize_rotated_kernel(HlwqView weight, int64_t first_row, int64_t row_count, void* out,
                                               bool out_bf16, int block_log2) {
  __shared__ float codebook[1 << kBits];
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) codebook[i] = weight.centroids[i];
  __syncthreads();
  const int64_t padded = weight.padded_columns;
  const int64_t index = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kValuesPerThread;
  if (index >= row_count * padded) return;
  const int64_t local_row = index / padded, column = index % padded;
  const int64_t row = first_row + local_row;
  const int64_t block_index = column >> block_log2;
  const int position = static_cast<int>(column & (weight.block - 1));
  const uint8_t* block_codes = weight.codes + row * weight.code_bytes + block_index * (weight.block * kBits / 8);
  const float gain = __half2float(__ushort_as_half(__ldg(weight.gains + row * weight.blocks + block_index)));
  float values[kValuesPerThread];
#pragma unroll
  for (int t = 0; t < kValuesPerThread; ++t) {
    values[t] = codebook[hlwq_code_at<kBits>(block_codes, position + t, block_log2)] * gain;
  }
  store_values(out, index, values, out_bf16);
}

__global__ void affine_dequantize_kernel(AffineView weight, int64_t first_row, int64_t row_count, void* out,
                                         bool out_bf16) {
  const int64_t index = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kValuesPerThread;
  if (index >= row_count * weight.columns) return;
  const int64_t row = first_row + index / weight.columns, column = index % weight.columns;
  const uint32_t* row_words = weight.packed + row * (weight.columns * weight.bits / 32);
  const int64_t group = row * (weight.columns / weight.group) + column / weight.group;
  const float scale = stored_float(weight.scales, group, weight.scale_type);
  const float bias = stored_float(weight.biases, group, weight.scale_type);
  float values[kValuesPerThread];
#pragma unroll
  for (int t = 0; t < kValuesPerThread; ++t) {
    const float code = small_uint_to_float(affine_code_at(row_words, column + t, weight.bits));
    values[t] = __fadd_rn(__fmul_rn(scale, code), bias);  // MLX's float arithmetic, not fused
  }
  store_values(out, index, values, out_bf16);
}

__global__ void int4_dequantize_kernel(Int4View weight, int64_t first_row, int64_t row_count, void* out,
                                       bool out_bf16) {
  const int64_t index = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kValuesPerThread;
  if (index >= row_count * weight.columns) return;
  const int64_t row = first_row + index / weight.columns, column = index % weight.columns;
  const uint32_t word = __ldg(weight.packed + row * (weight.columns / 8) + column / 8);
  const float scale =
      stored_float(weight.scales, row * (weight.columns / weight.group) + column / weight.group, weight.scale_type);
  float values[kValuesPerThread];
#pragma unroll
  for (int t = 0; t < kValuesPerThread; ++t) {
    values[t] = (__uint_as_float(0x4B000000u | ((word >> (4 * t)) & 15u)) - 8388616.0f) * scale;
  }
  store_values(out, index, values, out_bf16);
}

__global__ void dense_convert_kernel(DenseView weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16) {
  const int64_t index = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kValuesPerThread;
  const int64_t total = row_count * weight.columns;
  if (index >= total) return;
  const int64_t start = first_row * weight.columns + index;
  if (index + kValuesPerThread <= total) {
    float values[kValuesPerThread];
#pragma unroll
    for (int t = 0; t < kValuesPerThread; ++t) values[t] = stored_float(weight.data, start + t, weight.element);
    if ((reinterpret_cast<uintptr_t>(out) % 16 == 0) && index % 8 == 0) {
      store_values(out, index, values, out_bf16);
      return;
    }
  }
  for (int64_t t = 0; t < kValuesPerThread && index + t < total; ++t) {
    const float value = stored_float(weight.data, start + t, weight.element);
    if (out_bf16) {
      static_cast<__nv_bfloat16*>(out)[index + t] = __float2bfloat16_rn(value);
    } else {
      static_cast<float*>(out)[index + t] = value;
    }
  }
}

__global__ void floats_to_bf16_kernel(const float* in, int64_t count, __nv_bfloat16* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(in[i]);
}

}  // namespace

void hlwq_dequantize_rotated(const HlwqView& weight, int64_t first_row, int64_t row_count, void* out,
                             bool out_bf16, cudaStream_t stream) {
  const unsigned grid = grid_for(row_count * weight.padded_columns);
  const int block_log2 = log2_of_block(weight.block);
  using Kernel = void (*)(HlwqView, int64_t, int64_t, void*, bool, int);
  constexpr Kernel kByBits[] = {nullptr,
                                nullptr,
                                hlwq_dequantize_rotated_kernel<2>,
                                hlwq_dequantize_rotated_kernel<3>,
                                hlwq_dequantize_rotated_kernel<4>,
                                hlwq_dequantize_rotated_kernel<5>,
                                hlwq_dequantize_rotated_kernel<6>,
                                hlwq_dequantize_rotated_kernel<7>,
                                hlwq_dequantize_rotated_kernel<8>};
  kByBits[weight.bits]<<<grid, kThreads, 0, stream>>>(weight, first_row, row_count, out, out_bf16, block_log2);
  check_launch("HLWQ prefill dequantization");
}

void affine_dequantize(const AffineView& weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16,
                       cudaStream_t stream) {
  affine_dequantize_kernel<<<grid_for(row_count * weight.columns), kThreads, 0, stream>>>(weight, first_row,
                                                                                           row_count, out, out_bf16);
  check_launch("MLX affine prefill dequantization");
}

void int4_dequantize(const Int4View& weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16,
                     cudaStream_t stream) {
  int4_dequantize_kernel<<<grid_for(row_count * weight.columns), kThreads, 0, stream>>>(weight, first_row, row_count,
                                                                                         out, out_bf16);
  check_launch("INT4 prefill dequantization");
}

void dense_convert(const DenseView& weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16,
                   cudaStream_t stream) {
  const int64_t values = row_count * weight.columns;
  const unsigned grid = static_cast<unsigned>((values + kValuesPerThread * kThreads - 1) / (kValuesPerThread * kThreads));
  dense_convert_kernel<<<grid, kThreads, 0, stream>>>(weight, first_row, row_count, out, out_bf16);
  check_launch("dense prefill conversion");
}

void floats_to_bf16(const float* in, int64_t count, void* out, cudaStream_t stream) {
  floats_to_bf16_kernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, stream>>>(
      in, count, static_cast<__nv_bfloat16*>(out));
  check_launch("float to BF16 conversion");
}

}  // namespace hlwq::cuda::kernels
