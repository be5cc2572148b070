// The linear-layer product every model layer uses: y = x W^T for a batch of activation rows, on
// whichever storage format the weight has. Picks a kernel by small predicates (format, batch,
// CPU features); each kernel is tested against linear_forward_reference.
#pragma once

#include <cstdint>
#include <span>

#include "core/thread_pool.h"
#include "ops/linear_weight.h"

namespace hlwq {

// x: batch x weight.columns floats (row-major), y: batch x weight.rows floats.
void linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y,
                    ThreadPool& pool);

// Several weights of the same columns applied to one x (q, k and v after the attention norm; gate
// and up after the MLP norm): ys[i] = x weights[i]^T, batch x weights[i]->rows floats. Decoding
// (batch <= 4) runs every product in ONE pool call over the weights' rows laid end to end, and HLWQ
// weights with the same rotation (block, signs) share one rotated x: on SmolLM2-135M a decode step
// makes 90 fewer hand-offs (151 instead of 241). Larger batches, and groups with a weight no fast
// kernel covers, run as separate linear_forward calls. Either way ys equal separate linear_forward
// calls bit for bit.
// Throws hlwq::Error when the counts, columns or sizes do not match.
void linear_forward_group(std::span<const LinearWeight* const> weights, std::span<const float> x, int64_t batch,
                          std::span<const std::span<float>> ys, ThreadPool& pool);

}  // namespace hlwq
