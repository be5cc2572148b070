// linear_forward_group (src/ops/linear.cc): several weights on one x equal separate linear_forward
// calls bit for bit, for every format and kernel path, and on mixed groups where some HLWQ weights
// may share the rotated x and some may not.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cpu/linear_kernels.h"
#include "ops/linear.h"
#include "ops/linear_weight_builders.h"
#include "test_util.h"

namespace hlwq {
namespace {

constexpr int64_t kColumns = 576;  // SmolLM2-135M's hidden size: a partial 64-byte line of nibbles

std::shared_ptr<const HlwqCodec> make_codec(int bits, int block, std::optional<uint64_t> sign_seed,
                                            Rotation rotation = Rotation::hadamard) {
  HlwqParams params;
  params.bits = bits;
  params.block = block;
  params.sign_seed = sign_seed;
  params.rotation = rotation;
  return std::make_shared<const HlwqCodec>(params, kColumns);
}

// A weight of `rows` x kColumns in the format `make` builds from a fresh random matrix.
template <class Make>
LinearWeight random_weight(int64_t rows, uint32_t seed, const Make& make) {
  return make(random_normal(rows * kColumns, seed, 0.1f), rows);
}

// Rows of q/k/v-like groups: unequal, none a multiple of 4 rows or of a thread's share.
constexpr int64_t kGroupRows[] = {37, 13, 22};

// Three weights of one format (the rows above) for every kernel path of the decode.
std::vector<std::pair<std::string, std::vector<LinearWeight>>> groups_of_one_format() {
  ThreadPool pool(1);
  std::vector<std::pair<std::string, std::vector<LinearWeight>>> groups;
  uint32_t seed = 2000;
  const auto add = [&](const std::string& name, const auto& make) {
    std::vector<LinearWeight> weights;
    for (int64_t rows : kGroupRows) weights.push_back(random_weight(rows, seed++, make));
    groups.emplace_back(name, std::move(weights));
  };
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    add("dense " + std::string(dtype_name(dtype)), [&](const std::vector<float>& m, int64_t rows) {
      return make_dense_linear_weight(dtype, m, rows, kColumns);
    });
  }
  // HLWQ: the nibble-word kernels (Q4/Q5 at blocks 64 and 128), the fused walks (Q3, Q6, Q7, Q8),
  // with and without signs.
  struct Hlwq {
    int bits, block;
    bool signs;
  };
  for (const Hlwq& h : {Hlwq{4, 64, true}, Hlwq{4, 128, false}, Hlwq{5, 64, true}, Hlwq{5, 128, true},
                        Hlwq{3, 128, true}, Hlwq{6, 32, true}, Hlwq{7, 64, false}, Hlwq{8, 128, true}}) {
    const auto codec = make_codec(h.bits, h.block, h.signs ? std::optional<uint64_t>(77) : std::nullopt);
    add("HLWQ Q" + std::to_string(h.bits) + " d " + std::to_string(h.block) + (h.signs ? " signs" : ""),
        [&](const std::vector<float>& m, int64_t rows) { return make_hlwq_linear_weight(codec, m, rows, pool); });
  }
  for (int bits : {4, 3, 8}) {
    add("MLX " + std::to_string(bits) + " bits", [&](const std::vector<float>& m, int64_t rows) {
      return make_mlx_affine_linear_weight(AffineParams{bits, 64}, DType::BF16, m, rows, kColumns);
    });
  }
  add("INT4", [&](const std::vector<float>& m, int64_t rows) {
    return make_int4_linear_weight(Int4Params{32}, DType::F16, m, rows, kColumns);
  });
  TrellisFormat trellis;
  trellis.sign_seed = 77;
  const auto trellis_codec = std::make_shared<const TrellisCodec>(trellis, kColumns);
  add("trellis k 4 L 12", [&](const std::vector<float>& m, int64_t rows) {
    return make_trellis_linear_weight(trellis_codec, m, rows, pool);
  });
  return groups;
}

// ys of the group call against separate linear_forward calls on the same pool, bit for bit.
void expect_group_equals_separate_calls(const std::vector<LinearWeight>& weights, int64_t batch, ThreadPool& pool,
                                        uint32_t seed, const std::string& what) {
  const std::vector<float> x = random_normal(batch * kColumns, seed);
  std::vector<const LinearWeight*> pointers;
  std::vector<std::vector<float>> separate, grouped;
  std::vector<std::span<float>> outputs;
  for (const LinearWeight& weight : weights) {
    pointers.push_back(&weight);
    separate.emplace_back(batch * weight.rows);
    linear_forward(weight, x, batch, separate.back(), pool);
    grouped.emplace_back(batch * weight.rows, -777.0f);  // any row left unwritten shows
  }
  for (std::vector<float>& y : grouped) outputs.emplace_back(y);
  linear_forward_group(pointers, x, batch, outputs, pool);
  for (size_t i = 0; i < weights.size(); ++i) {
    EXPECT_EQ(grouped[i], separate[i]) << what << ", weight " << i << ", batch " << batch << ", "
                                       << pool.size() << " threads";
  }
}

// Batches 1-4: one pool call over all rows (batch 1 reduces four rows at a time, so thread
// boundaries that cut a group of four matter); 7: separate calls on the panel path.
constexpr int64_t kBatches[] = {1, 2, 4, 7};

TEST(LinearForwardGroup, EqualsSeparateCallsForEveryFormat) {
  ThreadPool one(1), two(2), three(3);
  uint32_t seed = 3000;
  for (const auto& [name, weights] : groups_of_one_format()) {
    for (ThreadPool* pool : {&one, &two, &three}) {
      for (int64_t batch : kBatches) expect_group_equals_separate_calls(weights, batch, *pool, seed++, name);
    }
  }
}

// HLWQ weights in a row that share x' (same block and signs), then ones that must not (other signs,
// no signs, another block, no rotation), between weights of other formats: a wrongly shared x'
// changes their outputs.
TEST(LinearForwardGroup, SharesTheRotationOnlyWhereItIsTheSame) {
  ThreadPool build_pool(1);
  uint32_t seed = 4000;
  const auto hlwq = [&](std::shared_ptr<const HlwqCodec> codec, int64_t rows) {
    return make_hlwq_linear_weight(std::move(codec), random_normal(rows * kColumns, seed++, 0.1f), rows, build_pool);
  };
  const auto signs_a = make_codec(4, 64, 11);
  std::vector<LinearWeight> weights;
  weights.push_back(hlwq(signs_a, 21));
  weights.push_back(hlwq(make_codec(5, 64, 11), 9));  // same rotation, other bits: shares
  weights.push_back(hlwq(make_codec(4, 64, 12), 14));  // other signs
  weights.push_back(make_dense_linear_weight(DType::BF16, random_normal(6 * kColumns, seed++, 0.1f), 6, kColumns));
  weights.push_back(hlwq(make_codec(4, 64, std::nullopt), 10));  // no signs
  weights.push_back(hlwq(make_codec(4, 128, std::nullopt), 10));  // another block
  weights.push_back(hlwq(make_codec(4, 128, std::nullopt, Rotation::none), 10));  // no rotation
  weights.push_back(make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::F32,
                                                  random_normal(11 * kColumns, seed++, 0.1f), 11, kColumns));
  weights.push_back(hlwq(signs_a, 5));  // the first rotation again, after others
  EXPECT_TRUE(hlwq_same_rotation(weights[0], weights[1]));
  EXPECT_TRUE(hlwq_same_rotation(weights[0], weights[8]));
  for (size_t other : {2, 4, 5, 6}) EXPECT_FALSE(hlwq_same_rotation(weights[0], weights[other])) << other;
  EXPECT_FALSE(hlwq_same_rotation(weights[4], weights[5]));
  EXPECT_FALSE(hlwq_same_rotation(weights[5], weights[6]));
  EXPECT_FALSE(hlwq_same_rotation(weights[0], weights[3]));  // not HLWQ
  ThreadPool two(2), eight(8);
  for (ThreadPool* pool : {&two, &eight}) {
    for (int64_t batch : kBatches) expect_group_equals_separate_calls(weights, batch, *pool, seed++, "mixed group");
  }
}

// A weight no fast kernel covers (dense F64, which only the reference reads) sends the group to
// separate calls.
TEST(LinearForwardGroup, WeightsWithoutAFastKernelTakeTheReference) {
  const int64_t rows = 7;
  const std::vector<float> matrix = random_normal(rows * kColumns, 5001, 0.1f);
  LinearWeight f64;
  f64.format = LinearFormat::dense;
  f64.dtype = DType::F64;
  f64.rows = rows;
  f64.columns = kColumns;
  f64.data = AlignedBuffer(matrix.size() * sizeof(double));
  for (size_t i = 0; i < matrix.size(); ++i) reinterpret_cast<double*>(f64.data.data())[i] = matrix[i];
  ASSERT_FALSE(dense_linear_applies(f64));
  std::vector<LinearWeight> weights;
  weights.push_back(make_dense_linear_weight(DType::F32, random_normal(5 * kColumns, 5000, 0.1f), 5, kColumns));
  weights.push_back(std::move(f64));
  ThreadPool pool(2);
  for (int64_t batch : kBatches) expect_group_equals_separate_calls(weights, batch, pool, 5002, "reference weight");
}

TEST(LinearForwardGroup, RejectsMismatchedGroups) {
  const LinearWeight a = make_dense_linear_weight(DType::F32, random_normal(4 * 64, 6000), 4, 64);
  const LinearWeight b = make_dense_linear_weight(DType::F32, random_normal(3 * 64, 6001), 3, 64);
  const LinearWeight wide = make_dense_linear_weight(DType::F32, random_normal(3 * 128, 6002), 3, 128);
  ThreadPool pool(2);
  const std::vector<float> x = random_normal(2 * 64, 6003);
  std::vector<float> ya(2 * 4), yb(2 * 3), y_wide(2 * 3);
  const LinearWeight* pair[] = {&a, &b};
  const LinearWeight* mixed_columns[] = {&a, &wide};
  const LinearWeight* missing[] = {&a, nullptr};
  const std::span<float> outputs[] = {ya, yb};
  const std::span<float> short_output[] = {ya, std::span<float>(yb).first(5)};
  const std::span<float> mixed_outputs[] = {ya, y_wide};
  EXPECT_NO_THROW(linear_forward_group(pair, x, 2, outputs, pool));
  EXPECT_THROW(linear_forward_group(pair, x, 2, std::span<const std::span<float>>(outputs).first(1), pool), Error);
  EXPECT_THROW(linear_forward_group(pair, x, 2, short_output, pool), Error);
  EXPECT_THROW(linear_forward_group(pair, std::span<const float>(x).first(127), 2, outputs, pool), Error);
  EXPECT_THROW(linear_forward_group(pair, x, -1, outputs, pool), Error);
  EXPECT_THROW(linear_forward_group(mixed_columns, x, 2, mixed_outputs, pool), Error);
  EXPECT_THROW(linear_forward_group(missing, x, 2, outputs, pool), Error);
  EXPECT_NO_THROW(linear_forward_group({}, {}, 0, {}, pool));
}

}  // namespace
}  // namespace hlwq
