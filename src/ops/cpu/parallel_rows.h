// What every CPU *_linear_forward wrapper shares: the size checks, the product's RowProductShape and
// its split over a ThreadPool. Small batches split over weight rows; large ones (the register-
// blocked panel path) into tasks of whole 32-row panels times blocks of tokens, so that many threads
// stay busy on a matrix of a few hundred rows and none gets a nearly empty panel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>

#include "core/thread_pool.h"
#include "ops/cpu/row_product.h"
#include "ops/linear_weight.h"

namespace hlwq {

// Batches up to this many tokens read each weight row once for the whole batch (the decode path)
// and split over weight rows alone.
inline constexpr size_t kSmallBatch = 4;

// The shape of y = x W^T for `weight` after checking that x holds batch rows of weight.columns
// floats and y batch rows of weight.rows; `kernel` names the caller in the (internal) error.
RowProductShape linear_product_shape(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                                     std::span<float> y, std::string_view kernel);

// Checks the buffers of a group-quantized weight (MLX affine, CT INT4): code_bytes_per_row bytes of
// codes and columns / group_size scales per row, as many biases when with_biases.
void check_grouped_weight(const LinearWeight& weight, size_t code_bytes_per_row, int64_t group_size,
                          bool with_biases, std::string_view kernel);

// How a product of `batch` tokens by `rows` weight rows is cut into tasks: task i is token block
// i / row_blocks times row block i % row_blocks. Small batches (at most 4 tokens: each weight row is
// read once for the whole batch) keep one token block and rows of one row each, so the pool's
// contiguous chunks are plain row ranges.
struct RowProductSplit {
  size_t rows = 0;
  size_t batch = 0;
  size_t row_block = 1;  // 1, or kMaxChunkRows: whole panels of the large-batch path
  size_t row_blocks = 0;
  size_t token_blocks = 1;  // near-equal ranges of the batch; more than 4 tokens each when batch > 4

  size_t tasks() const { return row_blocks * token_blocks; }
  std::pair<size_t, size_t> token_range(size_t token_block) const;  // [begin, end)
  std::pair<size_t, size_t> row_range(size_t block) const;          // [begin, end)
};

// The split for `threads` threads: for large batches the token block count that finishes soonest,
// counting each task's work as its tokens plus a fixed cost for making its panels ready (decoding
// and transposing 32 weight rows, repeated by every token block).
RowProductSplit split_row_product(size_t rows, size_t batch, size_t threads);

// Computes y rows [row_begin, row_end) for the tokens `shape` describes (shape.x, shape.y and
// shape.batch narrowed to one token block; shape.rows, the y stride, unchanged).
using RowProductKernel = std::function<void(const RowProductShape& shape, size_t row_begin, size_t row_end)>;

// Runs the product on the pool. A thread's consecutive tasks of one token block go to the kernel
// as one row range. Every output is computed by one task with the arithmetic of an unsplit call
// (token blocks of a large batch keep more than 4 tokens, so the same panel path, whose outputs are
// each one sum in k order), so results do not depend on the thread count.
void parallel_rows(ThreadPool& pool, const RowProductShape& shape, const RowProductKernel& kernel);

// A product checked and made ready to run over ranges of weight rows: the shape its kernel sees
// (for HLWQ the rotated activations, which the kernel keeps alive) and the kernel.
struct RowProduct {
  RowProductShape shape;
  RowProductKernel kernel;
};

// Several small-batch products (at most kSmallBatch tokens each, e.g. q, k and v of one input) as
// ONE pool call over their rows laid end to end: each thread's contiguous range is cut at the
// products' boundaries and every piece goes to its own kernel. A decode step pays one hand-off
// (1-3 us on 2 threads, more when a core is busy) instead of one per product. Every output is the
// same single-row dot product parallel_rows would compute, so the results equal separate calls bit
// for bit.
void parallel_rows_of_group(ThreadPool& pool, std::span<const RowProduct> products);

}  // namespace hlwq
