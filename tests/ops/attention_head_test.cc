// The SIMD attention head against the plain double reference, on every compiled
// SIMD target and every cache dtype, for head sizes with and without a tail
// past whole vectors.
#include "ops/attention_head.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "hwy/targets.h"
#include "test_util.h"

namespace hlwq {
namespace {

struct CachedRows {
  std::vector<std::byte> keys, values;
  float largest_value = 0;  // max |value| after rounding to the dtype
};

// positions rows of row_stride values, stored as dtype (the head reads head_dim
// of them at an offset).
CachedRows make_rows(DType dtype, size_t positions, size_t row_stride, uint32_t seed) {
  CachedRows rows;
  const std::vector<float> keys = random_normal(positions * row_stride, seed);
  const std::vector<float> values = random_normal(positions * row_stride, seed + 1);
  rows.keys.resize(keys.size() * dtype_size(dtype));
  rows.values.resize(values.size() * dtype_size(dtype));
  convert_from_float(keys, dtype, rows.keys);
  convert_from_float(values, dtype, rows.values);
  std::vector<float> rounded(values.size());
  convert_to_float(dtype, rows.values, rounded);
  for (float v : rounded) rows.largest_value = std::max(rows.largest_value, std::fabs(v));
  return rows;
}

void expect_head_matches_reference(DType dtype, size_t head_dim, size_t positions, uint32_t seed,
                                   const std::string& what) {
  const size_t row_stride = 3 * head_dim + 5;  // three heads and a gap, like a GQA cache row
  const size_t offset = head_dim + 2;          // a head starting mid-row
  const CachedRows rows = make_rows(dtype, positions, row_stride, seed);
  const std::vector<float> query = random_normal(head_dim, seed + 2);
  const size_t element = dtype_size(dtype);
  AttentionHead head;
  head.query = query.data();
  head.keys = rows.keys.data() + offset * element;
  head.values = rows.values.data() + offset * element;
  head.dtype = dtype;
  head.row_stride = row_stride;
  head.positions = positions;
  head.head_dim = head_dim;
  head.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  std::vector<float> expected(head_dim), actual(head_dim, 12345.0f), scratch(positions + 3, -7.0f);
  attention_head_reference(head, expected);
  attention_head(head, scratch, actual);
  // Float sums: score errors of ~head_dim ulps change the weights by ~1e-5
  // relative; the weighted sum adds ~positions ulps of the largest value at
  // worst.
  const double bound = 1e-4 * rows.largest_value;
  for (size_t i = 0; i < head_dim; ++i) {
    ASSERT_NEAR(actual[i], expected[i], bound) << what << ", dtype " << dtype_name(dtype) << ", head_dim " << head_dim
                                               << ", positions " << positions << ", index " << i;
  }
}

void expect_all_cases_match(const std::string& what) {
  uint32_t seed = 100;
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    for (size_t head_dim : {64, 128, 80, 3}) {
      for (size_t positions : {1, 5, 37, 300}) expect_head_matches_reference(dtype, head_dim, positions, seed++, what);
    }
  }
}

TEST(AttentionHead, MatchesReference) { expect_all_cases_match("default target"); }

TEST(AttentionHead, EverySimdTargetMatchesReference) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    expect_all_cases_match(std::string("target ") + hwy::TargetName(target));
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(AttentionHead, OneDominantPositionGivesItsValues) {
  // A key far along the query makes the softmax put (nearly) all weight on that
  // position.
  const size_t head_dim = 64, positions = 9;
  std::vector<float> query = random_normal(head_dim, 5), keys(positions * head_dim, 0.0f),
                     values = random_normal(positions * head_dim, 6);
  for (size_t i = 0; i < head_dim; ++i) keys[4 * head_dim + i] = 40.0f * query[i];
  AttentionHead head;
  head.query = query.data();
  head.keys = reinterpret_cast<const std::byte*>(keys.data());
  head.values = reinterpret_cast<const std::byte*>(values.data());
  head.dtype = DType::F32;
  head.row_stride = head_dim;
  head.positions = positions;
  head.head_dim = head_dim;
  head.scale = 0.125f;
  std::vector<float> out(head_dim), scratch(positions);
  attention_head(head, scratch, out);
  for (size_t i = 0; i < head_dim; ++i) EXPECT_NEAR(out[i], values[4 * head_dim + i], 1e-5);
}

TEST(AttentionHead, RejectsTooSmallScratch) {
  const std::vector<float> query(8, 1.0f), rows(8 * 4, 1.0f);
  AttentionHead head;
  head.query = query.data();
  head.keys = head.values = reinterpret_cast<const std::byte*>(rows.data());
  head.row_stride = 8;
  head.positions = 4;
  head.head_dim = 8;
  std::vector<float> out(8), scratch(3);
  EXPECT_THROW(attention_head(head, scratch, out), Error);
}

}  // namespace
}  // namespace hlwq
