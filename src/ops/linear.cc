#include "ops/linear.h"

#include <optional>
#include <vector>

#include "core/error.h"
#include "ops/cpu/linear_kernels.h"

namespace hlwq {

namespace {

void check_sizes(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y,
                 const char* function) {
  check(batch >= 0 && static_cast<int64_t>(x.size()) == batch * weight.columns &&
            static_cast<int64_t>(y.size()) == batch * weight.rows,
        function, ": x has ", x.size(), " values, y ", y.size(), " for batch ", batch, " and a ", weight.rows, "x",
        weight.columns, " weight");
}

// The fast kernel's product for a weight other than HLWQ (whose x' may be shared: see
// linear_forward_group); nullopt when only the reference covers the weight.
std::optional<RowProduct> plain_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                                            std::span<float> y) {
  if (dense_linear_applies(weight)) return dense_row_product(weight, x, batch, y);
  if (trellis_linear_applies(weight)) return trellis_row_product(weight, x, batch, y);
  if (mlx_affine_linear_applies(weight)) return mlx_affine_row_product(weight, x, batch, y);
  if (int4_linear_applies(weight)) return int4_row_product(weight, x, batch, y);
  return std::nullopt;
}

bool has_fast_kernel(const LinearWeight& weight) {
  return dense_linear_applies(weight) || hlwq_linear_applies(weight) || trellis_linear_applies(weight) ||
         mlx_affine_linear_applies(weight) || int4_linear_applies(weight);
}

}  // namespace

// The first kernel whose predicate accepts the weight runs; anything left (a layout no fast kernel
// covers) takes the plain reference, which is correct for every format.
void linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y,
                    ThreadPool& pool) {
  check_sizes(weight, x, batch, y, "linear_forward");
  if (batch == 0) return;
  if (dense_linear_applies(weight)) return dense_linear_forward(weight, x, batch, y, pool);
  if (hlwq_linear_applies(weight)) return hlwq_linear_forward(weight, x, batch, y, pool);
  if (trellis_linear_applies(weight)) return trellis_linear_forward(weight, x, batch, y, pool);
  if (mlx_affine_linear_applies(weight)) return mlx_affine_linear_forward(weight, x, batch, y, pool);
  if (int4_linear_applies(weight)) return int4_linear_forward(weight, x, batch, y, pool);
  linear_forward_reference(weight, x, batch, y);
}

void linear_forward_group(std::span<const LinearWeight* const> weights, std::span<const float> x, int64_t batch,
                          std::span<const std::span<float>> ys, ThreadPool& pool) {
  check(weights.size() == ys.size(), "linear_forward_group: ", weights.size(), " weights but ", ys.size(),
        " outputs");
  bool all_fast = true;
  for (size_t i = 0; i < weights.size(); ++i) {
    check(weights[i] != nullptr, "linear_forward_group: weight ", i, " is missing");
    check(weights[i]->columns == weights[0]->columns, "linear_forward_group: weight ", i, " has ",
          weights[i]->columns, " columns, weight 0 has ", weights[0]->columns);
    check_sizes(*weights[i], x, batch, ys[i], "linear_forward_group");
    all_fast = all_fast && has_fast_kernel(*weights[i]);
  }
  if (batch == 0 || weights.empty()) return;
  // Prefill's few large products gain nothing from sharing a hand-off.
  if (batch > static_cast<int64_t>(kSmallBatch) || !all_fast) {
    for (size_t i = 0; i < weights.size(); ++i) linear_forward(*weights[i], x, batch, ys[i], pool);
    return;
  }
  std::vector<RowProduct> products;
  products.reserve(weights.size());
  // The last x' made, and the weight it was made for.
  std::shared_ptr<const std::vector<float>> rotated;
  const LinearWeight* rotated_for = nullptr;
  for (size_t i = 0; i < weights.size(); ++i) {
    const LinearWeight& weight = *weights[i];
    if (!hlwq_linear_applies(weight)) {
      products.push_back(*plain_row_product(weight, x, batch, ys[i]));
      continue;
    }
    if (rotated_for == nullptr || !hlwq_same_rotation(*rotated_for, weight)) {
      rotated = hlwq_rotated_activations(weight, x, batch, pool);
      rotated_for = &weight;
    }
    products.push_back(hlwq_row_product(weight, rotated, batch, ys[i]));
  }
  parallel_rows_of_group(pool, products);
}

}  // namespace hlwq
