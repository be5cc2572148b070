#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <stdexcept>
#include <vector>

namespace hlwq {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (size_t count : {0u, 1u, 2u, 7u, 1000u}) {
      std::vector<std::atomic<int>> hits(count);
      pool.parallel_for(count, [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) hits[i]++;
      });
      for (size_t i = 0; i < count; ++i) EXPECT_EQ(hits[i].load(), 1) << threads << " " << count;
    }
  }
}

TEST(ThreadPool, RethrowsWorkerExceptions) {
  ThreadPool pool(4);
  EXPECT_THROW(pool.parallel_for(100, [](size_t begin, size_t) {
    if (begin > 0) throw std::runtime_error("boom");
  }), std::runtime_error);
  // The pool stays usable afterwards.
  std::atomic<int> total = 0;
  pool.parallel_for(10, [&](size_t begin, size_t end) { total += static_cast<int>(end - begin); });
  EXPECT_EQ(total.load(), 10);
}

// Many short calls back to back, some after a pause long enough for the workers to fall asleep:
// a lost wake-up between spinning and sleeping would hang here (and ctest's timeout would fail it).
TEST(ThreadPool, ManyShortCallsAndSleepsLoseNoWork) {
  ThreadPool pool(3);
  int64_t expected = 0;
  std::atomic<int64_t> total = 0;
  for (int call = 0; call < 20000; ++call) {
    const size_t count = 1 + call % 7;
    expected += static_cast<int64_t>(count);
    pool.parallel_for(count, [&](size_t begin, size_t end) { total += static_cast<int64_t>(end - begin); });
    if (call % 2000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(total.load(), expected);
}

}  // namespace
}  // namespace hlwq
