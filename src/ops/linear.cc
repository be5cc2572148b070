#include "ops/linear.h"

#include "core/error.h"
#include "ops/cpu/linear_kernels.h"

namespace hlwq {

// The first kernel whose predicate accepts the weight runs; anything left (a layout no fast kernel
// covers) takes the plain reference, which is correct for every format.
void linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y,
                    ThreadPool& pool) {
  check(batch >= 0 && static_cast<int64_t>(x.size()) == batch * weight.columns &&
            static_cast<int64_t>(y.size()) == batch * weight.rows,
        "linear_forward: x has ", x.size(), " values, y ", y.size(), " for batch ", batch, " and a ",
        weight.rows, "x", weight.columns, " weight");
  if (batch == 0) return;
  if (dense_linear_applies(weight)) return dense_linear_forward(weight, x, batch, y, pool);
  if (hlwq_linear_applies(weight)) return hlwq_linear_forward(weight, x, batch, y, pool);
  if (mlx_affine_linear_applies(weight)) return mlx_affine_linear_forward(weight, x, batch, y, pool);
  if (int4_linear_applies(weight)) return int4_linear_forward(weight, x, batch, y, pool);
  linear_forward_reference(weight, x, batch, y);
}

}  // namespace hlwq
