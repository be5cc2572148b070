// Fast CPU kernels of y = x W^T, one per weight format (SIMD with Highway's runtime dispatch, rows
// split across a ThreadPool). linear_forward picks one with the *_applies predicates.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/parallel_rows.h"
#include "ops/linear_weight.h"

namespace hlwq {

// Every kernel takes x: batch x weight.columns floats and writes y: batch x weight.rows floats.
// Each output is one row's dot product summed in a fixed order per SIMD target, so results do not
// depend on the thread count (they do differ between SIMD targets by rounding).
// *_linear_forward runs the product on the pool; *_row_product checks the same sizes and returns it
// ready to run over row ranges (parallel_rows, or parallel_rows_of_group for several at once).

// Dense F32, F16 and BF16 weights: the weight row is widened in registers, never copied.
bool dense_linear_applies(const LinearWeight& weight);
void dense_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                          std::span<float> y, ThreadPool& pool);
RowProduct dense_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y);

// HLWQ codes and gains: activations are rotated once per call, x' = H(s * x_block) (x' = x with
// rotation none), then each row is sum over blocks of gain / sqrt(d) * <c[q], x'>; the codes are
// never turned back into weights.
bool hlwq_linear_applies(const LinearWeight& weight);
void hlwq_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                         std::span<float> y, ThreadPool& pool);
// x' for `weight` (batch rows of whole blocks), shareable by every weight hlwq_same_rotation accepts.
std::shared_ptr<const std::vector<float>> hlwq_rotated_activations(const LinearWeight& weight,
                                                                   std::span<const float> x, int64_t batch,
                                                                   ThreadPool& pool);
// True when x' of `a` is x' of `b` for every x: same columns, block, rotation and signs.
bool hlwq_same_rotation(const LinearWeight& a, const LinearWeight& b);
// The product on x' from hlwq_rotated_activations (of `weight` or one with the same rotation).
RowProduct hlwq_row_product(const LinearWeight& weight, std::shared_ptr<const std::vector<float>> rotated,
                            int64_t batch, std::span<float> y);

// Trellis codes and gains: the activations are rotated once per call (x' = H(s * x_block)), then
// each row is decoded block by block in the rotated domain (gain / sqrt(d) * codebook[state], a
// state a shift and a mask of the stored bits) and dotted with x'.
bool trellis_linear_applies(const LinearWeight& weight);
void trellis_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                            std::span<float> y, ThreadPool& pool);
RowProduct trellis_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                               std::span<float> y);

// MLX affine codes (any bit width; 4 bits decoded in the product with SIMD, 8 bits as bytes, others
// bit by bit into a scratch row): w = s q + b.
bool mlx_affine_linear_applies(const LinearWeight& weight);
void mlx_affine_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                               std::span<float> y, ThreadPool& pool);
RowProduct mlx_affine_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                                  std::span<float> y);

// CompressedTensors INT4 nibbles: w = s (q - 8).
bool int4_linear_applies(const LinearWeight& weight);
void int4_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                         std::span<float> y, ThreadPool& pool);
RowProduct int4_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y);

}  // namespace hlwq
