#include <gtest/gtest.h>

#ifdef HLWQ_HAVE_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace hlwq {
namespace {

TEST(CudaDevice, CountIsSaneOrSkipped) {
#ifdef HLWQ_HAVE_CUDA
  const int count = cuda::device_count();
  if (count == 0) GTEST_SKIP() << "no CUDA device on this machine";
  EXPECT_GT(count, 0);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace hlwq
