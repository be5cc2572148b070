// Dense F32 / F16 / BF16 linear product: each weight row is widened in registers and multiplied
// with up to four activation rows per load (SIMD, dynamic dispatch).
#include "ops/cpu/linear_kernels.h"
#include "ops/cpu/parallel_rows.h"

#include <cstddef>

#include "core/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/dense_linear.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "ops/cpu/row_product-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

template <typename T>
void DenseRows(const T* HWY_RESTRICT weights, const RowProductShape& shape, size_t begin, size_t end) {
  const size_t columns = shape.length;
  ProductOfRows<T>(shape, begin, end, nullptr, [&](size_t row, float*) { return weights + row * columns; });
}

void DenseRowsF32(const void* weights, const RowProductShape& shape, size_t begin, size_t end) {
  DenseRows(static_cast<const float*>(weights), shape, begin, end);
}
void DenseRowsBF16(const void* weights, const RowProductShape& shape, size_t begin, size_t end) {
  DenseRows(static_cast<const hwy::bfloat16_t*>(weights), shape, begin, end);
}
void DenseRowsF16(const void* weights, const RowProductShape& shape, size_t begin, size_t end) {
  DenseRows(static_cast<const hwy::float16_t*>(weights), shape, begin, end);
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(DenseRowsF32);
HWY_EXPORT(DenseRowsBF16);
HWY_EXPORT(DenseRowsF16);

bool dense_linear_applies(const LinearWeight& weight) {
  return weight.format == LinearFormat::dense &&
         (weight.dtype == DType::F32 || weight.dtype == DType::F16 || weight.dtype == DType::BF16);
}

RowProduct dense_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y) {
  check(dense_linear_applies(weight), "internal: dense_linear_forward on a non-dense weight");
  // Dense rows are read in place; a large batch walks them in chunks so each activation tile is
  // read once per chunk rather than once per row.
  const RowProductShape shape = linear_product_shape(weight, x, batch, y, "dense_linear_forward");
  check(weight.data.size() == shape.rows * shape.length * dtype_size(weight.dtype),
        "internal: dense_linear_forward sizes do not match the ", weight.rows, "x", weight.columns, " weight");
  const void* data = weight.data.data();
  auto* kernel = weight.dtype == DType::F32    ? HWY_DYNAMIC_DISPATCH(DenseRowsF32)
                 : weight.dtype == DType::BF16 ? HWY_DYNAMIC_DISPATCH(DenseRowsBF16)
                                               : HWY_DYNAMIC_DISPATCH(DenseRowsF16);
  return {shape, [data, kernel](const RowProductShape& part, size_t begin, size_t end) {
            kernel(data, part, begin, end);
          }};
}

void dense_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                          std::span<float> y, ThreadPool& pool) {
  const RowProduct product = dense_row_product(weight, x, batch, y);
  parallel_rows(pool, product.shape, product.kernel);
}

}  // namespace hlwq
#endif  // HWY_ONCE
