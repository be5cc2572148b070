// MLX affine linear product: each row's codes are unpacked (4-bit nibbles with SIMD, 8-bit as bytes,
// other widths bit by bit), turned into w = s q + b in one multiply-add per vector, and dotted
// with up to four activation rows per load.
#include <cstring>

#include "core/error.h"
#include "hwy/aligned_allocator.h"
#include "ops/cpu/linear_kernels.h"
#include "ops/cpu/parallel_rows.h"
#include "quant/lsb_first_packing.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/mlx_affine_linear.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "ops/cpu/row_product-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

void MlxAffineRows(const uint32_t* packed, const float* scales, const float* biases, int bits, size_t group_size,
                   const RowProductShape& shape, size_t begin, size_t end) {
  if (bits == 4 && NibbleRowsApply(shape.batch, group_size)) {
    NibbleRows(NibbleRowsShape{reinterpret_cast<const uint8_t*>(packed), scales, biases, 0.0f, group_size}, shape,
               begin, end);
    return;
  }
  const size_t columns = shape.length;
  const size_t words = columns * static_cast<size_t>(bits) / 32;
  const size_t groups = columns / group_size;
  auto scratch = hwy::AllocateAligned<float>(shape.chunk_rows * columns);
  auto codes = hwy::AllocateAligned<uint8_t>(columns);
  ProductOfRows<float>(shape, begin, end, scratch.get(), [&](size_t row, float* out) {
    const uint32_t* row_words = packed + row * words;
    if (bits == 4) {
      UnpackNibbles(reinterpret_cast<const uint8_t*>(row_words), columns / 2, codes.get());
    } else if (bits == 8) {
      std::memcpy(codes.get(), row_words, columns);
    } else {
      unpack_lsb_first({row_words, words}, bits, {codes.get(), columns});
    }
    AffineCodesToFloats(codes.get(), scales + row * groups, biases + row * groups, 0.0f, groups, group_size, out);
    return static_cast<const float*>(out);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(MlxAffineRows);

bool mlx_affine_linear_applies(const LinearWeight& weight) {
  // Groups must be whole float vectors (at most 16 lanes here): MLX groups are 32, 64 or 128.
  return weight.format == LinearFormat::mlx_affine && weight.affine.group_size % 16 == 0 &&
         weight.affine.group_size > 0 && weight.columns % weight.affine.group_size == 0;
}

RowProduct mlx_affine_row_product(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                                  std::span<float> y) {
  check(mlx_affine_linear_applies(weight), "internal: mlx_affine_linear_forward on a weight it does not apply to");
  const RowProductShape shape = linear_product_shape(weight, x, batch, y, "mlx_affine_linear_forward");
  check_grouped_weight(weight, affine_packed_words_per_row(weight.columns, weight.affine.bits) * 4,
                       weight.affine.group_size, true, "mlx_affine_linear_forward");
  return {shape, [&weight](const RowProductShape& part, size_t begin, size_t end) {
            HWY_DYNAMIC_DISPATCH(MlxAffineRows)(weight.packed.as<uint32_t>().data(), weight.scales.data(),
                                                weight.biases.data(), weight.affine.bits,
                                                static_cast<size_t>(weight.affine.group_size), part, begin, end);
          }};
}

void mlx_affine_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                               std::span<float> y, ThreadPool& pool) {
  const RowProduct product = mlx_affine_row_product(weight, x, batch, y);
  parallel_rows(pool, product.shape, product.kernel);
}

}  // namespace hlwq
#endif  // HWY_ONCE
