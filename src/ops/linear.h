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

}  // namespace hlwq
