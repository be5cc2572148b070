#include "ops/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "hwy/targets.h"
#include "ops/cpu/linear_kernels.h"
#include "ops/linear_weight_builders.h"
#include "test_util.h"

namespace hlwq {
namespace {

// The weight as the reference dequantizes it: the reference product with the identity matrix
// (column c of W^T is W e_c), so the bound below needs nothing from the kernels under test.
std::vector<float> reference_weights(const LinearWeight& weight) {
  const int64_t columns = weight.columns;
  std::vector<float> identity(columns * columns, 0.0f);
  for (int64_t c = 0; c < columns; ++c) identity[c * columns + c] = 1.0f;
  std::vector<float> transposed(columns * weight.rows);
  linear_forward_reference(weight, identity, columns, transposed);
  std::vector<float> w(weight.rows * columns);
  for (int64_t c = 0; c < columns; ++c) {
    for (int64_t r = 0; r < weight.rows; ++r) w[r * columns + c] = transposed[c * weight.rows + r];
  }
  return w;
}

// Checks linear_forward against linear_forward_reference on fresh random activations:
// |y - y_ref| <= relative * sum_c |w_rc x_c| (+ extra[r, c] |x_c| when given, for formats whose
// reference rounds each weight to a narrower type than the kernel does).
// w: reference_weights(weight), computed once per weight by the caller.
void expect_matches_reference(const LinearWeight& weight, const std::vector<float>& w, int64_t batch, uint32_t seed,
                              double relative, const std::string& what,
                              const std::vector<float>& per_weight_slack = {}) {
  const std::vector<float> x = random_normal(batch * weight.columns, seed);
  std::vector<float> expected(batch * weight.rows), actual(batch * weight.rows, 12345.0f);
  linear_forward_reference(weight, x, batch, expected);
  ThreadPool pool(2);
  linear_forward(weight, x, batch, actual, pool);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < weight.rows; ++r) {
      double magnitude = 0, slack = 0;
      for (int64_t c = 0; c < weight.columns; ++c) {
        const double xc = std::fabs(x[b * weight.columns + c]);
        magnitude += std::fabs(w[r * weight.columns + c]) * xc;
        if (!per_weight_slack.empty()) slack += per_weight_slack[r * weight.columns + c] * xc;
      }
      ASSERT_NEAR(actual[b * weight.rows + r], expected[b * weight.rows + r], relative * magnitude + slack)
          << what << ", batch " << batch << ", row " << r << ", batch row " << b;
    }
  }
}

// 1 and 3: the decode path; 12 and 17: the register-blocked panel path with a partial token tile.
constexpr int64_t kBatches[] = {1, 3, 12, 17};

TEST(LinearForward, DenseMatchesReference) {
  uint32_t seed = 1;
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    // 4500 columns: many column segments of both paths, the last one partial; 70 rows: two whole
    // panels of the large-batch path and a partial one.
    for (auto [rows, columns] : {std::pair<int64_t, int64_t>{7, 33}, {16, 256}, {5, 1000}, {3, 5}, {5, 4500}, {70, 300}}) {
      const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.1f);
      const LinearWeight weight = make_dense_linear_weight(dtype, matrix, rows, columns);
      ASSERT_TRUE(dense_linear_applies(weight));
      const std::vector<float> w = reference_weights(weight);
      for (int64_t batch : kBatches) {
        expect_matches_reference(weight, w, batch, seed++, 1e-5,
                                 std::string(dtype_name(dtype)) + " " + std::to_string(rows) + "x" +
                                     std::to_string(columns));
      }
    }
  }
}

std::shared_ptr<const HlwqCodec> make_codec(int bits, int block, bool signs, int64_t columns) {
  HlwqParams params;
  params.bits = bits;
  params.block = block;
  if (signs) params.sign_seed = 0x5eed + bits;
  return std::make_shared<const HlwqCodec>(params, columns);
}

TEST(LinearForward, HlwqMatchesReferenceForEveryBitWidth) {
  uint32_t seed = 100;
  struct Shape {
    int64_t rows, columns;
    int block;
    bool signs;
  };
  for (int bits = 2; bits <= 8; ++bits) {
    for (const Shape& shape : {Shape{9, 576, 128, true}, Shape{12, 256, 64, false}, Shape{5, 200, 32, true}}) {
      const std::vector<float> matrix = random_normal(shape.rows * shape.columns, seed++, 0.05f);
      ThreadPool pool(1);
      const LinearWeight weight =
          make_hlwq_linear_weight(make_codec(bits, shape.block, shape.signs, shape.columns), matrix, shape.rows, pool);
      ASSERT_TRUE(hlwq_linear_applies(weight));
      const std::vector<float> w = reference_weights(weight);
      for (int64_t batch : kBatches) {
        expect_matches_reference(weight, w, batch, seed++, 1e-4,
                                 "Q" + std::to_string(bits) + " d " + std::to_string(shape.block) + " " +
                                     std::to_string(shape.columns) + " columns, signs " +
                                     std::to_string(shape.signs));
      }
    }
  }
}

TEST(LinearForward, HlwqLargeBlocksMatchReference) {
  ThreadPool pool(1);
  uint32_t seed = 200;
  for (int bits : {4, 5}) {
    const int64_t rows = 4, columns = 4500;  // beyond one column segment (2048) of large batches
    const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.05f);
    const LinearWeight weight = make_hlwq_linear_weight(make_codec(bits, 1024, true, columns), matrix, rows, pool);
    const std::vector<float> w = reference_weights(weight);
    for (int64_t batch : kBatches) expect_matches_reference(weight, w, batch, seed++, 1e-4, "d 1024");
  }
}

// The decode path at every batch tile (1 to 4 activation rows), blocks of 64 (two blocks per
// 64-byte line of nibbles; 700 columns: 11 blocks, the last line half empty), 128 and 256 (several
// lines per block), a partial last block. On AVX-512: for 4 and 5 bits the kernel that indexes the
// centroid table with whole shifted words of codes and permutes the activations; for 2 and 3 bits
// at blocks 64 and 128 the compile-time geometry (Q3's 1-bit plane is half a vector at 64); for 6
// bits the four-vector lookup; for 8 the gather.
TEST(LinearForward, HlwqDecodeTilesMatchReference) {
  ThreadPool pool(1);
  uint32_t seed = 250;
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int block : {64, 128, 256}) {
      const int64_t rows = 11, columns = 700;
      const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.05f);
      const LinearWeight weight = make_hlwq_linear_weight(make_codec(bits, block, true, columns), matrix, rows, pool);
      const std::vector<float> w = reference_weights(weight);
      for (int64_t batch = 1; batch <= 4; ++batch) {
        expect_matches_reference(weight, w, batch, seed++, 1e-4,
                                 "Q" + std::to_string(bits) + " d " + std::to_string(block));
      }
    }
  }
}

// The ablation's variants (docs/FORMAT.md) run through the same kernel: rotation none only skips
// the activation transform, the uniform codebook is one more centroid table. Every SIMD target,
// the decode path (batch <= 4) and the decoded-rows path (larger batches), blocks of 128 and 64.
TEST(LinearForward, HlwqAblationVariantsMatchReferenceOnEverySimdTarget) {
  struct Variant {
    Rotation rotation;
    CodebookKind codebook;
  };
  const Variant variants[] = {{Rotation::none, CodebookKind::uniform},
                              {Rotation::hadamard, CodebookKind::uniform},
                              {Rotation::none, CodebookKind::converged}};
  std::vector<LinearWeight> weights;
  std::vector<std::string> labels;
  uint32_t seed = 900;
  ThreadPool pool(1);
  for (const Variant& variant : variants) {
    for (int bits : {4, 5}) {
      for (auto [block, columns] : {std::pair<int, int64_t>{128, 576}, {64, 200}}) {
        if (variant.codebook == CodebookKind::converged && block == 64) continue;
        HlwqParams params;
        params.bits = bits;
        params.block = block;
        params.rotation = variant.rotation;
        params.codebook = variant.codebook;
        const int64_t rows = 7;
        const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.05f);
        weights.push_back(
            make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, columns), matrix, rows, pool));
        labels.push_back("Q" + std::to_string(bits) + " d " + std::to_string(block) + " rotation " +
                         (variant.rotation == Rotation::none ? "none" : "hadamard") + " codebook " +
                         codebook_kind_name(variant.codebook));
      }
    }
  }
  std::vector<std::vector<float>> dequantized;
  for (const LinearWeight& weight : weights) {
    ASSERT_TRUE(hlwq_linear_applies(weight));
    dequantized.push_back(reference_weights(weight));
  }
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (size_t i = 0; i < weights.size(); ++i) {
      for (int64_t batch : kBatches) {
        expect_matches_reference(weights[i], dequantized[i], batch, seed++, 1e-4,
                                 std::string(hwy::TargetName(target)) + ", " + labels[i]);
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// |b_g| + 2^-7 |w| per weight: MLX's reference rounds s q and then s q + b to BF16 (each within
// 2^-9 relative), the kernel keeps both in float.
std::vector<float> bf16_affine_slack(const LinearWeight& weight, const std::vector<float>& w) {
  std::vector<float> slack(w.size());
  const int64_t groups = weight.columns / weight.affine.group_size;
  for (int64_t r = 0; r < weight.rows; ++r) {
    for (int64_t c = 0; c < weight.columns; ++c) {
      const float bias = weight.biases[r * groups + c / weight.affine.group_size];
      slack[r * weight.columns + c] = std::ldexp(std::fabs(bias) + 2 * std::fabs(w[r * weight.columns + c]), -8);
    }
  }
  return slack;
}

// Trellis rows decoded in the rotated domain (4-byte gathers, shifts, codebook gathers) against the
// plain reference (the walk unpacked bit by bit, the O(d^2) transform in double), on every
// combination of k, L, block, padding and signs below, at every batch path.
TEST(LinearForward, TrellisMatchesReference) {
  ThreadPool pool(1);
  uint32_t seed = 900;
  struct Shape {
    int bits, state_bits, block;
    int64_t rows, columns;
    bool signs;
  };
  for (const Shape& shape : {Shape{4, 12, 64, 9, 576, true}, Shape{3, 12, 128, 12, 300, false},
                             Shape{2, 10, 32, 5, 96, true}, Shape{4, 14, 64, 7, 192, false},
                             Shape{5, 16, 256, 4, 1000, true}, Shape{8, 16, 32, 3, 64, false}}) {
    TrellisFormat format;
    format.bits = shape.bits;
    format.state_bits = shape.state_bits;
    format.block = shape.block;
    if (shape.signs) format.sign_seed = 11;
    const std::vector<float> matrix = random_normal(shape.rows * shape.columns, seed++, 0.05f);
    const LinearWeight weight = make_trellis_linear_weight(
        std::make_shared<const TrellisCodec>(format, shape.columns), matrix, shape.rows, pool);
    ASSERT_TRUE(trellis_linear_applies(weight));
    const std::vector<float> w = reference_weights(weight);
    for (int64_t batch : kBatches) {
      expect_matches_reference(weight, w, batch, seed++, 1e-4,
                               "trellis k " + std::to_string(shape.bits) + " L " + std::to_string(shape.state_bits) +
                                   " d " + std::to_string(shape.block) + " " + std::to_string(shape.columns) +
                                   " columns");
    }
  }
}

TEST(LinearForward, MlxAffineMatchesReference) {
  uint32_t seed = 300;
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      for (DType scale_dtype : {DType::F32, DType::BF16}) {
        const int64_t rows = 6, columns = 384;
        const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.1f);
        const LinearWeight weight =
            make_mlx_affine_linear_weight(AffineParams{bits, group}, scale_dtype, matrix, rows, columns);
        ASSERT_TRUE(mlx_affine_linear_applies(weight));
        const std::vector<float> w = reference_weights(weight);
        const std::vector<float> slack =
            scale_dtype == DType::F32 ? std::vector<float>{} : bf16_affine_slack(weight, w);
        for (int64_t batch : kBatches) {
          expect_matches_reference(weight, w, batch, seed++, 1e-5,
                                   "MLX " + std::to_string(bits) + " bits, group " + std::to_string(group) + ", " +
                                       std::string(dtype_name(scale_dtype)),
                                   slack);
        }
      }
    }
  }
}

// The 4-bit decode path at every batch tile (1 to 4 activation rows), with a last partial 64-byte
// line of nibbles (544 and 576 columns: a quarter and a half of 128 codes) and groups of 32, 64 and
// 128 (4, 2 and 1 per line): on AVX-512 the kernel that looks nibbles up by whole shifted words.
TEST(LinearForward, NibbleDecodeTilesMatchReference) {
  uint32_t seed = 350;
  const int64_t rows = 7;
  for (auto [group, columns] : {std::pair<int64_t, int64_t>{32, 544}, {64, 576}, {128, 640}}) {
    const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.1f);
    const LinearWeight mlx =
        make_mlx_affine_linear_weight(AffineParams{4, static_cast<int>(group)}, DType::F32, matrix, rows, columns);
    const LinearWeight int4 = make_int4_linear_weight(Int4Params{static_cast<int>(group)}, DType::F32, matrix, rows, columns);
    const std::vector<float> mlx_w = reference_weights(mlx), int4_w = reference_weights(int4);
    for (int64_t batch = 1; batch <= 4; ++batch) {
      expect_matches_reference(mlx, mlx_w, batch, seed++, 1e-5, "MLX 4 bits, group " + std::to_string(group));
      expect_matches_reference(int4, int4_w, batch, seed++, 1e-5, "INT4 group " + std::to_string(group));
    }
  }
}

TEST(LinearForward, Int4MatchesReference) {
  uint32_t seed = 400;
  for (int group : {32, 64, 128}) {
    for (DType scale_dtype : {DType::F32, DType::BF16, DType::F16}) {
      const int64_t rows = 10, columns = 640;
      const std::vector<float> matrix = random_normal(rows * columns, seed++, 0.1f);
      const LinearWeight weight = make_int4_linear_weight(Int4Params{group}, scale_dtype, matrix, rows, columns);
      ASSERT_TRUE(int4_linear_applies(weight));
      const std::vector<float> w = reference_weights(weight);
      for (int64_t batch : kBatches) {
        expect_matches_reference(weight, w, batch, seed++, 1e-5,
                                 "INT4 group " + std::to_string(group) + ", " + std::string(dtype_name(scale_dtype)));
      }
    }
  }
}

// Weights of every format for the target and thread-count checks.
std::vector<LinearWeight> one_weight_per_format(int64_t rows) {
  ThreadPool pool(1);
  std::vector<LinearWeight> weights;
  const std::vector<float> matrix = random_normal(rows * 576, 500, 0.1f);
  weights.push_back(make_dense_linear_weight(DType::BF16, matrix, rows, 576));
  weights.push_back(make_dense_linear_weight(DType::F16, matrix, rows, 576));
  weights.push_back(make_hlwq_linear_weight(make_codec(4, 128, true, 576), matrix, rows, pool));
  weights.push_back(make_hlwq_linear_weight(make_codec(5, 128, false, 576), matrix, rows, pool));
  weights.push_back(make_hlwq_linear_weight(make_codec(7, 64, true, 576), matrix, rows, pool));
  weights.push_back(make_hlwq_linear_weight(make_codec(6, 128, true, 576), matrix, rows, pool));
  weights.push_back(make_hlwq_linear_weight(make_codec(8, 64, false, 576), matrix, rows, pool));
  weights.push_back(make_hlwq_linear_weight(make_codec(3, 64, true, 576), matrix, rows, pool));
  weights.push_back(make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::F32, matrix, rows, 576));
  weights.push_back(make_mlx_affine_linear_weight(AffineParams{3, 32}, DType::F32, matrix, rows, 576));
  weights.push_back(make_int4_linear_weight(Int4Params{64}, DType::BF16, matrix, rows, 576));
  TrellisFormat trellis;
  trellis.sign_seed = 3;
  weights.push_back(make_trellis_linear_weight(std::make_shared<const TrellisCodec>(trellis, 576), matrix, rows, pool));
  return weights;
}

TEST(LinearForward, EverySimdTargetMatchesReference) {
  const std::vector<LinearWeight> weights = one_weight_per_format(37);  // a panel and a partial one
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  std::vector<std::vector<float>> dequantized;
  for (const LinearWeight& weight : weights) dequantized.push_back(reference_weights(weight));
  uint32_t seed = 600;
  for (int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    for (size_t i = 0; i < weights.size(); ++i) {
      for (int64_t batch : {int64_t{1}, int64_t{6}, int64_t{15}}) {
        expect_matches_reference(weights[i], dequantized[i], batch, seed++, 1e-4,
                                 std::string(hwy::TargetName(target)) + ", weight " + std::to_string(i));
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Each output is one row's dot product in a fixed order, so the thread count never changes a bit:
// batches 1 and 3 split over rows; 9 to 200 over whole 32-row panels times token blocks (100 rows:
// three panels and a partial one; 200 tokens: several token blocks once there are threads for them).
TEST(LinearForward, ResultsDoNotDependOnTheThreadCount) {
  const std::vector<LinearWeight> weights = one_weight_per_format(100);
  ThreadPool pool_one(1), pool_three(3), pool_eight(8);
  for (size_t i = 0; i < weights.size(); ++i) {
    const LinearWeight& weight = weights[i];
    for (int64_t batch : {int64_t{1}, int64_t{3}, int64_t{9}, int64_t{12}, int64_t{64}, int64_t{200}}) {
      const std::vector<float> x = random_normal(batch * weight.columns, 700 + static_cast<uint32_t>(batch));
      std::vector<float> one(batch * weight.rows), three(batch * weight.rows, 1.0f), eight(batch * weight.rows, 2.0f);
      linear_forward(weight, x, batch, one, pool_one);
      linear_forward(weight, x, batch, three, pool_three);
      linear_forward(weight, x, batch, eight, pool_eight);
      EXPECT_EQ(one, three) << "weight " << i << ", batch " << batch;
      EXPECT_EQ(one, eight) << "weight " << i << ", batch " << batch;
    }
  }
}

TEST(LinearForward, RejectsMismatchedSizes) {
  const std::vector<float> matrix = random_normal(4 * 32, 800);
  const LinearWeight weight = make_dense_linear_weight(DType::F32, matrix, 4, 32);
  ThreadPool pool(1);
  std::vector<float> x(2 * 32, 1.0f), y(2 * 4);
  EXPECT_THROW(linear_forward(weight, std::span<const float>(x).first(63), 2, y, pool), Error);
  EXPECT_THROW(linear_forward(weight, x, 2, std::span<float>(y).first(7), pool), Error);
  EXPECT_THROW(linear_forward(weight, x, -1, y, pool), Error);
  EXPECT_NO_THROW(linear_forward(weight, {}, 0, {}, pool));
}

}  // namespace
}  // namespace hlwq
