// MLX affine decode product (batch 1..16): w = scale * q + bias per group, codes read straight from
// MLX's packed words (one LSB-first bit stream per row), every bits value MLX writes (2, 3, 4, 5, 6,
// 8) and groups of 32, 64, 128 (any multiple of 32 works).
//
// A unit is 32 codes = `bits` words (16 bytes at 4 bits, 32 at 8, 8 at 2, 24 at 6: vector loads;
// 12 and 20 bytes at 3 and 5 bits: word loads), always inside one group since groups are multiples
// of 32. Per code: a shift and mask (codes crossing a word: one more shift and OR, fixed at compile
// time), an exact integer-to-float (OR + subtract) and one FMA per x row; the group's scale and bias
// are applied once per unit (contiguous_gemv.cuh). The sums differ from MLX's (which rounds s q, then
// the sum, per weight) by float rounding only.
#include "ops/cuda/contiguous_gemv.cuh"

namespace hlwq::cuda::kernels {
namespace {

template <int kBits>
struct AffineFormat {
  using View = AffineView;
  static constexpr int kCodes = 32;
  static constexpr bool kAffine = true;
  static constexpr bool kOffset = true;
  struct Unit {
    uint32_t words[kBits];
    float scale, offset;
  };
  __device__ static int64_t units(const View& weight) { return weight.columns / 32; }
  __device__ static Unit load(const View& weight, int64_t row, int64_t unit) {
    Unit loaded;
    const int64_t row_words = weight.columns * kBits / 32;
    load_words<kBits * 4>(weight.packed + row * row_words + unit * kBits, loaded.words);
    const int64_t group = row * (weight.columns / weight.group) + unit * 32 / weight.group;
    loaded.scale = stored_float(weight.scales, group, weight.scale_type);
    loaded.offset = stored_float(weight.biases, group, weight.scale_type);
    return loaded;
  }
  // The code as a float: shift and mask (one more shift and OR when it crosses a word, fixed at
  // compile time), then 2^23 + q -> q (exact).
  __device__ static float raw(const Unit& loaded, int i) {
    const int bit = i * kBits, word = bit / 32, shift = bit % 32;
    uint32_t code = loaded.words[word] >> shift;
    if (shift + kBits > 32) code |= loaded.words[word + 1] << (32 - shift);
    return small_uint_to_float(code & ((1u << kBits) - 1));
  }
  __device__ static float weight(const Unit& loaded, float raw_value) {
    return fmaf(raw_value, loaded.scale, loaded.offset);
  }
};

}  // namespace

bool affine_gemv_applies(const AffineView& weight, int64_t batch) {
  const bool bits_ok = weight.bits == 2 || weight.bits == 3 || weight.bits == 4 || weight.bits == 5 ||
                       weight.bits == 6 || weight.bits == 8;
  return bits_ok && weight.group >= 32 && weight.group % 32 == 0 && weight.columns % weight.group == 0 &&
         batch >= 1 && batch <= kMaxGemvBatch;
}

void affine_gemv(const AffineView& weight, const float* x, int64_t batch, float* y, GemvVersion version,
                cudaStream_t stream) {
  switch (weight.bits) {
    case 2: launch_contiguous_gemv<AffineFormat<2>>(weight, x, batch, y, version, stream); break;
    case 3: launch_contiguous_gemv<AffineFormat<3>>(weight, x, batch, y, version, stream); break;
    case 4: launch_contiguous_gemv<AffineFormat<4>>(weight, x, batch, y, version, stream); break;
    case 5: launch_contiguous_gemv<AffineFormat<5>>(weight, x, batch, y, version, stream); break;
    case 6: launch_contiguous_gemv<AffineFormat<6>>(weight, x, batch, y, version, stream); break;
    case 8: launch_contiguous_gemv<AffineFormat<8>>(weight, x, batch, y, version, stream); break;
    default: break;
  }
  check_launch("MLX affine GEMV");
}

}  // namespace hlwq::cuda::kernels
