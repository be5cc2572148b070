// Per-target SIMD kernel of the unnormalized fast Walsh-Hadamard transform, shared by hadamard.cc
// and hlwq_codec.cc (which fuses it with the norm and the code search). Include it inside a
// Highway target loop (after hwy/foreach_target.h), like any Highway -inl.h header.

// Per-target include guard: re-included once per SIMD target.
#if defined(HLWQ_QUANT_HADAMARD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HLWQ_QUANT_HADAMARD_INL_H_
#undef HLWQ_QUANT_HADAMARD_INL_H_
#else
#define HLWQ_QUANT_HADAMARD_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The butterflies one pair at a time, strides 1, 2, 4, ... in that order. The SIMD version below
// performs the same additions in the same order, so both give identical bits.
HWY_INLINE void UnnormalizedHadamardScalar(float* HWY_RESTRICT values, size_t size) {
  for (size_t stride = 1; stride < size; stride *= 2) {
    for (size_t start = 0; start < size; start += 2 * stride) {
      for (size_t i = start; i < start + stride; ++i) {
        const float x = values[i], y = values[i + stride];
        values[i] = x + y;
        values[i + stride] = x - y;
      }
    }
  }
}

// Sylvester-order transform without the 1/sqrt(size) factor (entries of H are +-1); size is a
// power of two. Strides below the vector length pair lanes of one vector: a lane permutation
// brings each lane its partner, and one multiply-add with a +-1 pattern gives x + y in the lower
// and x - y in the upper lane (exact up to the single rounding that add/sub also has). Larger
// strides pair whole vectors.
template <class D>
HWY_INLINE void UnnormalizedHadamard(D d, float* HWY_RESTRICT values, size_t size) {
  const size_t lanes = hn::Lanes(d);
  if (lanes == 1 || size < lanes) {
    UnnormalizedHadamardScalar(values, size);
    return;
  }
  const hn::RebindToSigned<D> di;
  const auto lane_index = hn::Iota(di, 0);
  for (size_t offset = 0; offset < size; offset += lanes) {
    auto v = hn::LoadU(d, values + offset);
    for (size_t stride = 1; stride < lanes; stride *= 2) {
      const auto stride_vector = hn::Set(di, static_cast<int32_t>(stride));
      const auto partner = hn::TableLookupLanes(v, hn::IndicesFromVec(d, hn::Xor(lane_index, stride_vector)));
      const auto is_upper = hn::RebindMask(d, hn::TestBit(lane_index, stride_vector));
      const auto sign = hn::IfThenElse(is_upper, hn::Set(d, -1.0f), hn::Set(d, 1.0f));
      v = hn::MulAdd(v, sign, partner);
    }
    hn::StoreU(v, d, values + offset);
  }
  for (size_t stride = lanes; stride < size; stride *= 2) {
    for (size_t start = 0; start < size; start += 2 * stride) {
      for (size_t i = start; i < start + stride; i += lanes) {
        const auto x = hn::LoadU(d, values + i);
        const auto y = hn::LoadU(d, values + i + stride);
        hn::StoreU(hn::Add(x, y), d, values + i);
        hn::StoreU(hn::Sub(x, y), d, values + i + stride);
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#endif  // HLWQ_QUANT_HADAMARD_INL_H_
