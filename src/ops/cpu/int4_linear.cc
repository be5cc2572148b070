// CompressedTensors INT4 linear product: each row's nibbles are unpacked with SIMD, turned into
// w = s (q - 8) in one multiply-add per vector, and dotted with up to four activation rows per load.
#include "core/error.h"
#include "hwy/aligned_allocator.h"
#include "ops/cpu/linear_kernels.h"
#include "ops/cpu/parallel_rows.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/int4_linear.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "ops/cpu/row_product-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

void Int4Rows(const uint8_t* packed, const float* scales, size_t group_size, const RowProductShape& shape,
              size_t begin, size_t end) {
  if (NibbleRowsApply(shape.batch, group_size)) {
    NibbleRows(NibbleRowsShape{packed, scales, nullptr, -8.0f, group_size}, shape, begin, end);
    return;
  }
  const size_t columns = shape.length;
  const size_t groups = columns / group_size;
  auto scratch = hwy::AllocateAligned<float>(shape.chunk_rows * columns);
  auto codes = hwy::AllocateAligned<uint8_t>(columns);
  ProductOfRows<float>(shape, begin, end, scratch.get(), [&](size_t row, float* out) {
    UnpackNibbles(packed + row * columns / 2, columns / 2, codes.get());
    // s (n - 8) = s n + (-8 s): -8 s is exact, so the multiply-add rounds once, like s (n - 8).
    AffineCodesToFloats(codes.get(), scales + row * groups, nullptr, -8.0f, groups, group_size, out);
    return static_cast<const float*>(out);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(Int4Rows);

bool int4_linear_applies(const LinearWeight& weight) {
  return weight.format == LinearFormat::ct_int4 && weight.int4.group_size % 16 == 0 &&
         weight.int4.group_size > 0 && weight.columns % weight.int4.group_size == 0;
}

RowProduct int4_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch, std::span<float> y) {
  check(int4_linear_applies(weight), "internal: int4_linear_forward on a weight it does not apply to");
  const RowProductShape shape = linear_product_shape(weight, x, batch, y, "int4_linear_forward");
  check_grouped_weight(weight, shape.length / 2, weight.int4.group_size, false, "int4_linear_forward");
  return {shape, [&weight](const RowProductShape& part, size_t begin, size_t end) {
            HWY_DYNAMIC_DISPATCH(Int4Rows)(weight.packed.as<uint8_t>().data(), weight.scales.data(),
                                           static_cast<size_t>(weight.int4.group_size), part, begin, end);
          }};
}

void int4_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                         std::span<float> y, ThreadPool& pool) {
  const RowProduct product = int4_row_product(weight, x, batch, y);
  parallel_rows(pool, product.shape, product.kernel);
}

}  // namespace hlwq
#endif  // HWY_ONCE
