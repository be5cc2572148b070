#include "ops/linear_weight_builders.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

// Each builder fills the buffers of its format with the sizes the kernels expect.
TEST(LinearWeightBuilders, BuffersHaveTheFormatsSizes) {
  const int64_t rows = 3, columns = 256;
  const std::vector<float> matrix = random_normal(rows * columns, 11, 0.1f);
  ThreadPool pool(1);
  EXPECT_EQ(make_dense_linear_weight(DType::BF16, matrix, rows, columns).stored_bytes(), uint64_t(rows * columns * 2));
  HlwqParams params;
  params.bits = 5;
  const LinearWeight hlwq =
      make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, columns), matrix, rows, pool);
  EXPECT_EQ(hlwq.codes.size(), size_t(rows * 2 * 80));  // two blocks of 128 codes, 80 bytes each
  EXPECT_EQ(hlwq.norms.size(), size_t(rows * 2 * 2));
  const LinearWeight mlx = make_mlx_affine_linear_weight(AffineParams{3, 32}, DType::F32, matrix, rows, columns);
  EXPECT_EQ(mlx.packed.size(), size_t(rows * columns * 3 / 8));
  EXPECT_EQ(mlx.scales.size(), size_t(rows * columns / 32));
  const LinearWeight int4 = make_int4_linear_weight(Int4Params{64}, DType::BF16, matrix, rows, columns);
  EXPECT_EQ(int4.packed.size(), size_t(rows * columns / 2));
  EXPECT_EQ(int4.scales.size(), size_t(rows * columns / 64));
}

TEST(LinearWeightBuilders, RejectBadShapesAndParameters) {
  const std::vector<float> matrix = random_normal(4 * 96, 12);
  ThreadPool pool(1);
  EXPECT_THROW(make_dense_linear_weight(DType::F32, matrix, 4, 95), Error);
  EXPECT_THROW(make_dense_linear_weight(DType::I32, matrix, 4, 96), Error);
  EXPECT_THROW(make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::F32, matrix, 4, 96), Error);  // 96 % 64
  EXPECT_THROW(make_int4_linear_weight(Int4Params{64}, DType::F32, matrix, 4, 96), Error);
  EXPECT_THROW(make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(HlwqParams{}, 100), matrix, 4, pool), Error);
  EXPECT_THROW(make_hlwq_linear_weight(nullptr, matrix, 4, pool), Error);
}

}  // namespace
}  // namespace hlwq
