#include "ops/cpu/hlwq_q8_byte_lookup.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "ops/cpu/linear_kernels.h"
#include "ops/linear.h"
#include "ops/linear_weight_builders.h"
#include "test_util.h"

namespace hlwq {
namespace {

bool cpu_has_vbmi() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vbmi");
}

HlwqParams q8_params(int block) {
  HlwqParams params;
  params.bits = 8;
  params.block = block;
  params.sign_seed = 0x5eed;
  return params;
}

TEST(HlwqQ8ByteLookup, AppliesOnlyWhereItsLayoutAndTheCpuAllow) {
  const bool cpu = cpu_has_vbmi();
  for (int block : {64, 128, 256, 1024}) {
    for (size_t batch : {1, 2, 3, 4}) EXPECT_EQ(hlwq_q8_byte_lookup_applies(q8_params(block), batch), cpu) << block;
  }
  EXPECT_FALSE(hlwq_q8_byte_lookup_applies(q8_params(32), 1));    // a nibble plane of 16 bytes
  EXPECT_FALSE(hlwq_q8_byte_lookup_applies(q8_params(192), 1));   // not 64 nor a multiple of 128
  EXPECT_FALSE(hlwq_q8_byte_lookup_applies(q8_params(128), 5));   // larger batches: decoded rows
  EXPECT_FALSE(hlwq_q8_byte_lookup_applies(q8_params(128), 0));
  HlwqParams seven = q8_params(128);
  seven.bits = 7;
  EXPECT_FALSE(hlwq_q8_byte_lookup_applies(seven, 1));
}

// The kernel itself (called directly, not through the dispatch) against the plain reference
// product on fresh random weights and activations, every batch tile, blocks of 64 (two half
// planes joined), 128 and 256 (two chunks of 64 codes per plane), with a partial last block.
TEST(HlwqQ8ByteLookup, MatchesTheReferenceProduct) {
  if (!cpu_has_vbmi()) GTEST_SKIP() << "this CPU has no AVX-512 VBMI; the gather path serves Q8 here";
  ThreadPool pool(1);
  uint32_t seed = 900;
  for (int block : {64, 128, 256}) {
    const int64_t rows = 7, columns = 700;
    const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.05f);
    auto codec = std::make_shared<const HlwqCodec>(q8_params(block), columns);
    const LinearWeight weight = make_hlwq_linear_weight(codec, matrix, rows, pool);
    for (int64_t batch = 1; batch <= 4; ++batch) {
      const std::vector<float> x = random_normal(batch * columns, seed++);
      std::vector<float> expected(batch * rows), actual(batch * rows, 12345.0f);
      linear_forward_reference(weight, x, batch, expected);
      const RowProduct product = hlwq_row_product(weight, hlwq_rotated_activations(weight, x, batch, pool), batch, actual);
      hlwq_q8_byte_lookup_rows(*codec, weight.codes.as<uint8_t>().data(), weight.norms.as<uint16_t>().data(),
                               product.shape, 0, static_cast<size_t>(rows));
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t r = 0; r < rows; ++r) {
          double magnitude = 0;
          for (int64_t c = 0; c < columns; ++c) magnitude += std::fabs(matrix[r * columns + c] * x[b * columns + c]);
          // 1e-4 of sum |w x|: float sums in another order; a wrong centroid or code order is far off.
          EXPECT_NEAR(actual[b * rows + r], expected[b * rows + r], 1e-4 * magnitude)
              << "block " << block << ", batch " << batch << ", row " << r << ", batch row " << b;
        }
      }
    }
  }
}

TEST(HlwqQ8ByteLookup, RefusesWhatItDoesNotServe) {
  const HlwqCodec codec(q8_params(32), 64);
  RowProductShape shape;
  shape.batch = 1;
  EXPECT_THROW(hlwq_q8_byte_lookup_rows(codec, nullptr, nullptr, shape, 0, 0), Error);
}

}  // namespace
}  // namespace hlwq
