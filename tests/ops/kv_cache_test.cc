// KV cache rounding to its dtype and position checks.
#include "ops/kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(KvCache, RoundsToItsDtypeAndChecksPositions) {
  KvCache cache(2, 1, 4, 3, DType::BF16);
  const std::vector<float> keys = {1.0f, 1.00390625f, -2.5f, 3.1f}, values = {0.5f, 0.25f, 7.0f, -1.0f};
  cache.store(1, 2, keys, values);
  std::vector<float> read(4);
  cache.read_key(1, 2, 0, read);
  EXPECT_EQ(read[0], 1.0f);
  EXPECT_EQ(read[1], 1.0f);  // 1 + 2^-8 rounds to even in BF16
  EXPECT_EQ(read[2], -2.5f);
  EXPECT_NEAR(read[3], 3.1f, 0.02f);
  std::vector<float> two(2);
  cache.read_value(1, 2, 2, two);
  EXPECT_EQ(two[0], 7.0f);
  EXPECT_THROW(cache.store(1, 3, keys, values), Error);
  EXPECT_THROW(cache.store(2, 0, keys, values), Error);
  EXPECT_THROW(KvCache(1, 1, 4, 3, DType::I8), Error);
  EXPECT_THROW(KvCache(1, 1, 4, 0, DType::F16), Error);
}

}  // namespace
}  // namespace hlwq
