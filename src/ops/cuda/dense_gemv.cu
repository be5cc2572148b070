// Dense decode product (batch 1..16) for F32, F16 and BF16 rows: one 16-byte load per unit (4 F32
// or 8 F16/BF16 values), widened in registers (BF16: a shift; F16: the hardware conversion), one
// FMA per value and x row. Rows whose length is not a multiple of the unit (odd shapes in tests;
// no real layer) take a plain one-value-at-a-time kernel.
#include "ops/cuda/contiguous_gemv.cuh"

namespace hlwq::cuda::kernels {
namespace {

template <StoredFloat kElement>
struct DenseFormat {
  using View = DenseView;
  static constexpr int kElementBytes = kElement == StoredFloat::f32 ? 4 : 2;
  static constexpr int kCodes = 16 / kElementBytes;
  static constexpr bool kAffine = false;
  static constexpr bool kOffset = false;
  struct Unit {
    uint32_t words[4];
  };
  __device__ static int64_t units(const View& weight) { return weight.columns / kCodes; }
  __device__ static Unit load(const View& weight, int64_t row, int64_t unit) {
    Unit loaded;
    const auto* base = static_cast<const uint8_t*>(weight.data);
    load_words<16>(base + (row * weight.columns + unit * kCodes) * kElementBytes, loaded.words);
    return loaded;
  }
  __device__ static float raw(const Unit& loaded, int i) {
    if constexpr (kElement == StoredFloat::f32) {
      return __uint_as_float(loaded.words[i]);
    } else if constexpr (kElement == StoredFloat::bf16) {
      const uint32_t word = loaded.words[i / 2];
      return __uint_as_float(i % 2 == 0 ? word << 16 : word & 0xffff0000u);
    } else {
      const uint32_t word = loaded.words[i / 2];
      return __half2float(__ushort_as_half(static_cast<unsigned short>(i % 2 == 0 ? word & 0xffffu : word >> 16)));
    }
  }
  __device__ static float weight(const Unit&, float raw_value) { return raw_value; }
};

// Any shape: per CTA kGemvRows rows, threads stride over the columns one value at a time.
__global__ void __launch_bounds__(kGemvThreads)
    dense_gemv_any_shape_kernel(DenseView weight, const float* x, int batch, float* y) {
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kGemvRows;
  float acc[kGemvRows][kMaxGemvBatch] = {};
  for (int64_t column = threadIdx.x; column < weight.columns; column += kGemvThreads) {
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const int64_t row = min(first_row + r, weight.rows - 1);
      const float value = stored_float(weight.data, row * weight.columns + column, weight.element);
#pragma unroll
      for (int b = 0; b < kMaxGemvBatch; ++b) {
        if (b < batch) acc[r][b] = fmaf(value, x[b * weight.columns + column], acc[r][b]);
      }
    }
  }
  reduce_and_store<kGemvRows, kMaxGemvBatch>(acc, first_row, weight.rows, batch, y);
}

}  // namespace

bool dense_gemv_applies(const DenseView& weight, int64_t batch) {
  return weight.rows > 0 && weight.columns > 0 && batch >= 1 && batch <= kMaxGemvBatch;
}

void dense_gemv(const DenseView& weight, const float* x, int64_t batch, float* y, GemvVersion version,
                cudaStream_t stream) {
  const int64_t unit = weight.element == StoredFloat::f32 ? 4 : 8;
  if (weight.columns % unit != 0) {
    dense_gemv_any_shape_kernel<<<gemv_grid(weight.rows, 1), kGemvThreads, 0, stream>>>(weight, x,
                                                                                     static_cast<int>(batch), y);
  } else if (weight.element == StoredFloat::f32) {
    launch_contiguous_gemv<DenseFormat<StoredFloat::f32>>(weight, x, batch, y, version, stream);
  } else if (weight.element == StoredFloat::bf16) {
    launch_contiguous_gemv<DenseFormat<StoredFloat::bf16>>(weight, x, batch, y, version, stream);
  } else {
    launch_contiguous_gemv<DenseFormat<StoredFloat::f16>>(weight, x, batch, y, version, stream);
  }
  check_launch("dense GEMV");
}

}  // namespace hlwq::cuda::kernels
