// Pins the AVX-512 4-bit decode kernels (src/ops/cpu/row_product-inl.h: NibbleLineRows, the MLX
// 4-bit and INT4 products at batch 1..4) to the arithmetic of main e46d770 bit for bit: speed work
// on them (prefetching, pairing half lines) must not change a single output. The hash was made by
// the same function linked against main's library; other SIMD targets round differently and are
// checked against the reference in tests/ops/linear_test.cc instead.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "hwy/targets.h"
#include "ops/linear.h"
#include "ops/linear_weight_builders.h"

namespace hlwq {
namespace {

// FNV-1a over the bytes of y for MLX 4-bit and INT4 decode products (batch 1..4, 2 threads) on
// inputs from a fixed linear congruential sequence (independent of the standard library).
uint64_t nibble_decode_products_hash() {
  uint32_t state = 12345;
  const auto next_uniform = [&state] {  // in [-1, 1)
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
  };
  uint64_t hash = 14695981039346656037ull;
  ThreadPool pool(2);
  struct Shape {
    bool int4;
    int group;
    int64_t rows, columns;
  };
  for (const Shape& shape : {Shape{false, 64, 960, 576}, Shape{false, 64, 1536, 576}, Shape{false, 32, 98, 544},
                             Shape{false, 64, 70, 1536}, Shape{true, 32, 66, 544}, Shape{true, 64, 102, 576},
                             Shape{true, 128, 38, 640}}) {
    std::vector<float> matrix(static_cast<size_t>(shape.rows * shape.columns));
    for (float& value : matrix) value = 0.1f * next_uniform();
    const LinearWeight weight =
        shape.int4 ? make_int4_linear_weight(Int4Params{shape.group}, DType::BF16, matrix, shape.rows, shape.columns)
                   : make_mlx_affine_linear_weight(AffineParams{4, shape.group}, DType::BF16, matrix, shape.rows,
                                                   shape.columns);
    for (int64_t batch = 1; batch <= 4; ++batch) {
      std::vector<float> x(static_cast<size_t>(batch * shape.columns)), y(static_cast<size_t>(batch * shape.rows));
      for (float& value : x) value = next_uniform();
      linear_forward(weight, x, batch, y, pool);
      const auto* bytes = reinterpret_cast<const unsigned char*>(y.data());
      for (size_t i = 0; i < y.size() * sizeof(float); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
    }
  }
  return hash;
}

// Shapes: SmolLM2's q/k/v and gate/up rows laid end to end (960 and 1536 x 576: a half last
// line), a quarter last line (544), whole lines (1536, 640), row counts that leave 1..3 rows after
// the groups of four, groups of 32, 64 and 128.
TEST(NibbleDecodeGolden, AvxThreeOutputsEqualMainBitForBit) {
  if ((hwy::SupportedTargets() & HWY_AVX3) == 0) GTEST_SKIP() << "the CPU has no AVX-512 (HWY_AVX3)";
  hwy::SetSupportedTargetsForTest(HWY_AVX3);
  const uint64_t hash = nibble_decode_products_hash();
  hwy::SetSupportedTargetsForTest(0);
  EXPECT_EQ(hash, 0x68a163716b67d1c4ull);
}

}  // namespace
}  // namespace hlwq
