#include "ops/linear.h"

namespace hlwq {

// Until the SIMD kernels land, every format runs the reference product (correct, slow).
void linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y,
                    ThreadPool& pool) {
  (void)pool;
  linear_forward_reference(weight, x, batch, y);
}

}  // namespace hlwq
