#include "ops/cpu/parallel_rows.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/error.h"

namespace hlwq {

namespace {

// Tokens per task are at least this many (fewer would spend more time making panels ready than
// multiplying with them) ...
constexpr size_t kMinTaskTokens = 16;
// ... and a task's fixed cost, in tokens of product: decoding (for codes), widening and
// transposing its panels, once per token block. Measured on one AVX-512 core for 576x576,
// 1536x576 and 576x1536 F32 and HLWQ Q4 weights with 512 tokens cut into 16..256-token calls:
// each extra pass over the weight cost as much as 31 to 41 tokens of product.
constexpr size_t kTaskOverheadTokens = 32;

size_t divide_up(size_t a, size_t b) { return (a + b - 1) / b; }

}  // namespace

RowProductShape linear_product_shape(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                                     std::span<float> y, std::string_view kernel) {
  const size_t rows = static_cast<size_t>(weight.rows), columns = static_cast<size_t>(weight.columns);
  const size_t batch_rows = static_cast<size_t>(batch);
  check(batch >= 0 && x.size() == batch_rows * columns && y.size() == batch_rows * rows, "internal: ", kernel,
        " sizes do not match the ", rows, "x", columns, " weight");
  return RowProductShape{x.data(), batch_rows, columns, columns, y.data(), rows, chunk_rows_for(batch_rows, columns)};
}

void check_grouped_weight(const LinearWeight& weight, size_t code_bytes_per_row, int64_t group_size,
                          bool with_biases, std::string_view kernel) {
  const size_t rows = static_cast<size_t>(weight.rows);
  const size_t scales = group_size > 0 ? rows * static_cast<size_t>(weight.columns / group_size) : 0;
  check(group_size > 0 && weight.packed.size() == rows * code_bytes_per_row && weight.scales.size() == scales &&
            weight.biases.size() == (with_biases ? scales : weight.biases.size()),
        "internal: ", kernel, " sizes do not match the ", weight.rows, "x", weight.columns, " weight");
}

std::pair<size_t, size_t> RowProductSplit::token_range(size_t token_block) const {
  return {batch * token_block / token_blocks, batch * (token_block + 1) / token_blocks};
}

std::pair<size_t, size_t> RowProductSplit::row_range(size_t block) const {
  return {block * row_block, std::min(rows, (block + 1) * row_block)};
}

RowProductSplit split_row_product(size_t rows, size_t batch, size_t threads) {
  RowProductSplit split;
  split.rows = rows;
  split.batch = batch;
  if (batch <= kSmallBatch) {
    split.row_blocks = rows;
    return split;
  }
  split.row_block = kMaxChunkRows;
  split.row_blocks = divide_up(rows, kMaxChunkRows);
  threads = std::max<size_t>(threads, 1);
  // Token blocks of near-equal size have batch / token_blocks > kMinTaskTokens >= 5 tokens.
  const size_t most_token_blocks = std::max<size_t>(1, batch / kMinTaskTokens);
  size_t best_cost = std::numeric_limits<size_t>::max();
  for (size_t token_blocks = 1; token_blocks <= most_token_blocks; ++token_blocks) {
    // The busiest thread's tasks, each with the largest token block.
    const size_t cost = divide_up(split.row_blocks * token_blocks, threads) *
                        (divide_up(batch, token_blocks) + kTaskOverheadTokens);
    if (cost < best_cost) {
      best_cost = cost;
      split.token_blocks = token_blocks;
    }
  }
  return split;
}

void parallel_rows(ThreadPool& pool, const RowProductShape& shape, const RowProductKernel& kernel) {
  const RowProductSplit split = split_row_product(shape.rows, shape.batch, static_cast<size_t>(pool.size()));
  pool.parallel_for(split.tasks(), [&](size_t begin, size_t end) {
    for (size_t task = begin; task < end;) {
      // A run of tasks of one token block: its row blocks are consecutive.
      const size_t token_block = task / split.row_blocks;
      const size_t run_end = std::min(end, (token_block + 1) * split.row_blocks);
      const auto [first_token, last_token] = split.token_range(token_block);
      RowProductShape part = shape;
      part.x = shape.x + first_token * shape.x_stride;
      part.y = shape.y + first_token * shape.rows;
      part.batch = last_token - first_token;
      kernel(part, split.row_range(task % split.row_blocks).first,
             split.row_range((run_end - 1) % split.row_blocks).second);
      task = run_end;
    }
  });
}

void parallel_rows_of_group(ThreadPool& pool, std::span<const RowProduct> products) {
  // first_rows[i]: where product i's rows start in the concatenation.
  std::vector<size_t> first_rows(products.size() + 1, 0);
  for (size_t i = 0; i < products.size(); ++i) {
    check(products[i].shape.batch <= kSmallBatch, "internal: parallel_rows_of_group on a batch of ",
          products[i].shape.batch, " tokens");
    first_rows[i + 1] = first_rows[i] + products[i].shape.rows;
  }
  pool.parallel_for(first_rows.back(), [&](size_t begin, size_t end) {
    for (size_t i = 0; i < products.size(); ++i) {
      const size_t first = std::max(begin, first_rows[i]), last = std::min(end, first_rows[i + 1]);
      if (first < last) products[i].kernel(products[i].shape, first - first_rows[i], last - first_rows[i]);
    }
  });
}

}  // namespace hlwq
