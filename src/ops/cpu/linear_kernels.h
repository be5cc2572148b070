// Fast CPU kernels of y = x W^T, one per weight format (SIMD with Highway's runtime dispatch, rows
// split across a ThreadPool). linear_forward picks one with the *_applies predicates.
#pragma once

#include <cstdint>
#include <span>

#include "core/thread_pool.h"
#include "ops/linear_weight.h"

namespace hlwq {

// Every kernel takes x: batch x weight.columns floats and writes y: batch x weight.rows floats.
// Each output is one row's dot product summed in a fixed order per SIMD target, so results do not
// depend on the thread count (they do differ between SIMD targets by rounding).

// Dense F32, F16 and BF16 weights: the weight row is widened in registers, never copied.
bool dense_linear_applies(const LinearWeight& weight);
void dense_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                          std::span<float> y, ThreadPool& pool);

// HLWQ codes and gains: activations are rotated once per call, x' = H(s * x_block) (x' = x with
// rotation none), then each row is sum over blocks of gain / sqrt(d) * <c[q], x'>; the codes are
// never turned back into weights.
bool hlwq_linear_applies(const LinearWeight& weight);
void hlwq_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                         std::span<float> y, ThreadPool& pool);

// MLX affine codes (any bit width; 4 bits decoded in the product with SIMD, 8 bits as bytes, others
// bit by bit into a scratch row): w = s q + b.
bool mlx_affine_linear_applies(const LinearWeight& weight);
void mlx_affine_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                               std::span<float> y, ThreadPool& pool);

// CompressedTensors INT4 nibbles: w = s (q - 8).
bool int4_linear_applies(const LinearWeight& weight);
void int4_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                         std::span<float> y, ThreadPool& pool);

}  // namespace hlwq
