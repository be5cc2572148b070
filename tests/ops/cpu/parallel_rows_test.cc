// The split of a linear product over a ThreadPool: every output computed exactly once, large
// batches in whole 32-row panels and token blocks of more than 4 tokens, and enough balanced tasks
// for 16 threads on the demo model's matrices.
#include "ops/cpu/parallel_rows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

constexpr size_t kRows[] = {1, 31, 32, 100, 192, 576, 1536};
constexpr size_t kBatches[] = {1, 3, 4, 5, 9, 12, 64, 200, 255, 512};
constexpr size_t kThreads[] = {1, 2, 3, 8, 16};

TEST(ParallelRows, SplitCoversEveryOutputOnceInWholePanels) {
  for (size_t rows : kRows) {
    for (size_t batch : kBatches) {
      for (size_t threads : kThreads) {
        const RowProductSplit split = split_row_product(rows, batch, threads);
        std::vector<int> covered(rows * batch, 0);
        for (size_t task = 0; task < split.tasks(); ++task) {
          const auto [first_token, last_token] = split.token_range(task / split.row_blocks);
          const auto [first_row, last_row] = split.row_range(task % split.row_blocks);
          if (batch > 4) {
            // The panel path for every block, its panels starting at multiples of 32 rows.
            ASSERT_GT(last_token - first_token, 4u) << rows << " " << batch << " " << threads;
            ASSERT_EQ(first_row % 32, 0u);
          }
          for (size_t t = first_token; t < last_token; ++t) {
            for (size_t r = first_row; r < last_row; ++r) ++covered[t * rows + r];
          }
        }
        ASSERT_TRUE(std::all_of(covered.begin(), covered.end(), [](int count) { return count == 1; }))
            << rows << " rows, batch " << batch << ", " << threads << " threads";
        if (threads == 1) {
          EXPECT_EQ(split.token_blocks, 1u);  // nothing to balance: panels made ready once
        }
      }
    }
  }
}

// The work of the busiest thread (whole panels times tokens, as the pool hands out contiguous
// chunks of tasks) against an even share of the work, for the demo model's prefill matrices
// (576, 192 and 1536 rows, 512 tokens) with 16 threads. A split over rows alone gives a 576-row
// matrix 36 rows per thread: two panels, 1.78 times the even share.
TEST(ParallelRows, SixteenThreadsGetBalancedWork) {
  for (size_t rows : {size_t{576}, size_t{192}, size_t{1536}, size_t{49152}}) {
    const size_t batch = rows == 49152 ? 256 : 512, threads = 16;
    const RowProductSplit split = split_row_product(rows, batch, threads);
    size_t busiest = 0;
    for (size_t thread = 0; thread < threads; ++thread) {
      size_t work = 0;
      for (size_t task = split.tasks() * thread / threads; task < split.tasks() * (thread + 1) / threads; ++task) {
        const auto [first_token, last_token] = split.token_range(task / split.row_blocks);
        work += 32 * (last_token - first_token);  // a partial panel costs a whole one
      }
      busiest = std::max(busiest, work);
    }
    const double even_share = static_cast<double>(rows) * batch / threads;
    EXPECT_LT(busiest, 1.15 * even_share) << rows << " rows: " << split.token_blocks << " token blocks";
  }
}

TEST(ParallelRows, KernelSeesNarrowedShapes) {
  for (size_t threads : {1, 3, 8}) {
    ThreadPool pool(static_cast<int>(threads));
    for (size_t rows : {size_t{100}, size_t{576}}) {
      for (size_t batch : {size_t{2}, size_t{12}, size_t{200}}) {
        const size_t stride = 7;
        std::vector<float> x(batch * stride), y(batch * rows, 0.0f);
        for (size_t t = 0; t < batch; ++t) x[t * stride] = static_cast<float>(t);
        const RowProductShape shape{x.data(), batch, stride, 5, y.data(), rows, chunk_rows_for(batch, 5)};
        parallel_rows(pool, shape, [&](const RowProductShape& part, size_t begin, size_t end) {
          EXPECT_EQ(part.rows, rows);
          EXPECT_EQ(part.x_stride, stride);
          EXPECT_EQ(part.chunk_rows, shape.chunk_rows);
          if (batch > 4) {
            EXPECT_GT(part.batch, 4u);
          }
          for (size_t t = 0; t < part.batch; ++t) {
            for (size_t r = begin; r < end; ++r) part.y[t * part.rows + r] += part.x[t * part.x_stride] + 1.0f;
          }
        });
        for (size_t t = 0; t < batch; ++t) {
          for (size_t r = 0; r < rows; ++r) {
            ASSERT_EQ(y[t * rows + r], static_cast<float>(t + 1)) << threads << " " << rows << " " << batch;
          }
        }
      }
    }
  }
}

// Products of 0 to 192 rows in one pool call: every row of every product computed exactly once, each
// kernel called with its own shape and local row ranges; batches above 4 are refused.
TEST(ParallelRows, GroupCoversEveryRowOfEveryProductOnce) {
  const size_t product_rows[] = {37, 0, 1, 192, 13};
  for (size_t threads : {1, 2, 3, 8}) {
    ThreadPool pool(static_cast<int>(threads));
    for (size_t batch : {size_t{1}, size_t{4}}) {
      std::vector<std::vector<int>> counts;
      std::vector<RowProduct> products;
      for (size_t i = 0; i < std::size(product_rows); ++i) counts.emplace_back(product_rows[i] * batch, 0);
      for (size_t i = 0; i < std::size(product_rows); ++i) {
        RowProductShape shape{nullptr, batch, 8, 8, nullptr, product_rows[i], 1};
        std::vector<int>& count = counts[i];
        products.push_back({shape, [&count, i, shape](const RowProductShape& part, size_t begin, size_t end) {
                              EXPECT_EQ(part.rows, shape.rows) << i;
                              EXPECT_EQ(part.batch, shape.batch) << i;
                              ASSERT_LE(begin, end);
                              ASSERT_LE(end, shape.rows) << i;
                              for (size_t t = 0; t < part.batch; ++t) {
                                for (size_t r = begin; r < end; ++r) ++count[t * part.rows + r];
                              }
                            }});
      }
      parallel_rows_of_group(pool, products);
      for (size_t i = 0; i < counts.size(); ++i) {
        EXPECT_TRUE(std::all_of(counts[i].begin(), counts[i].end(), [](int count) { return count == 1; }))
            << "product " << i << ", " << threads << " threads, batch " << batch;
      }
    }
  }
  ThreadPool pool(2);
  const RowProduct large{RowProductShape{nullptr, 5, 8, 8, nullptr, 10, 32}, [](const RowProductShape&, size_t, size_t) {}};
  EXPECT_THROW(parallel_rows_of_group(pool, std::span<const RowProduct>(&large, 1)), Error);
}

TEST(ParallelRows, ShapeChecksSizes) {
  LinearWeight weight;
  weight.rows = 6;
  weight.columns = 64;
  std::vector<float> x(2 * 64), y(2 * 6);
  const RowProductShape shape = linear_product_shape(weight, x, 2, y, "test");
  EXPECT_EQ(shape.batch, 2u);
  EXPECT_EQ(shape.length, 64u);
  EXPECT_EQ(shape.y, y.data());
  EXPECT_THROW(linear_product_shape(weight, std::span<const float>(x).first(127), 2, y, "test"), Error);
  EXPECT_THROW(linear_product_shape(weight, x, 2, std::span<float>(y).first(11), "test"), Error);
  weight.packed = AlignedBuffer(6 * 32);
  weight.scales.assign(6 * 2, 1.0f);
  EXPECT_NO_THROW(check_grouped_weight(weight, 32, 32, false, "test"));
  EXPECT_THROW(check_grouped_weight(weight, 32, 32, true, "test"), Error);  // no biases
  EXPECT_THROW(check_grouped_weight(weight, 32, 16, false, "test"), Error);  // 4 scales a row
  EXPECT_THROW(check_grouped_weight(weight, 31, 32, false, "test"), Error);
}

}  // namespace
}  // namespace hlwq
