// CompressedTensors INT4 decode product (batch 1..16): w = (n - 8) * scale per group, n the stored
// nibble (eight per int32, LSB first). A unit is 32 codes = one 16-byte load, inside one group
// (groups are multiples of 32). Per code: shift and mask, then n - 8 as a float exactly (bits of
// 2^23 + n minus 2^23 + 8), one FMA per x row; the scale multiplies the unit's sum once
// (contiguous_gemv.cuh).
#include "ops/cuda/contiguous_gemv.cuh"

namespace hlwq::cuda::kernels {
namespace {

struct Int4Format {
  using View = Int4View;
  static constexpr int kCodes = 32;
  static constexpr bool kAffine = true;
  static constexpr bool kOffset = false;
  struct Unit {
    uint32_t words[4];
    float scale;
  };
  __device__ static int64_t units(const View& weight) { return weight.columns / 32; }
  __device__ static Unit load(const View& weight, int64_t row, int64_t unit) {
    Unit loaded;
    load_words<16>(weight.packed + row * (weight.columns / 8) + unit * 4, loaded.words);
    loaded.scale =
        stored_float(weight.scales, row * (weight.columns / weight.group) + unit * 32 / weight.group, weight.scale_type);
    return loaded;
  }
  // n - 8 as a float, exactly: the bits of 2^23 + n minus (2^23 + 8).
  __device__ static float raw(const Unit& loaded, int i) {
    const uint32_t nibble = (loaded.words[i / 8] >> (4 * (i % 8))) & 15u;
    return __uint_as_float(0x4B000000u | nibble) - 8388616.0f;
  }
  __device__ static float weight(const Unit& loaded, float raw_value) { return raw_value * loaded.scale; }
};

}  // namespace

bool int4_gemv_applies(const Int4View& weight, int64_t batch) {
  return weight.group >= 32 && weight.group % 32 == 0 && weight.columns % weight.group == 0 && batch >= 1 &&
         batch <= kMaxGemvBatch;
}

void int4_gemv(const Int4View& weight, const float* x, int64_t batch, float* y, GemvVersion version,
                cudaStream_t stream) {
  launch_contiguous_gemv<Int4Format>(weight, x, batch, y, version, stream);
  check_launch("INT4 GEMV");
}

}  // namespace hlwq::cuda::kernels
