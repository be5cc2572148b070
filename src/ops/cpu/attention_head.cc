// SIMD attention for one query head over F32/F16/BF16 cache rows: scores four
// positions at a time (four independent multiply-add chains; on AVX-512 reduced
// together by one transpose-and-add tree), a vectorized exp
// for the softmax, then the values summed into at most eight register
// accumulators per pass over the positions.
#include "ops/attention_head.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/attention_head.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "ops/cpu/row_product-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

// Scalar widening of one cached element (the tails past whole vectors).
template <typename T>
HWY_INLINE float WidenOne(const T* element) {
  return hn::GetLane(LoadWeights(hn::CappedTag<float, 1>(), element));
}

// scores[p] = scale * <query, row p> for every position.
template <typename T>
void Scores(const float* HWY_RESTRICT query, const T* HWY_RESTRICT keys, size_t stride, size_t positions,
            size_t head_dim, float scale, float* HWY_RESTRICT scores) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const size_t vector_end = head_dim - head_dim % lanes;
  size_t p = 0;
  for (; p + 4 <= positions; p += 4) {
    const T* rows[4] = {keys + p * stride, keys + (p + 1) * stride, keys + (p + 2) * stride, keys + (p + 3) * stride};
    auto sum0 = hn::Zero(d), sum1 = hn::Zero(d), sum2 = hn::Zero(d), sum3 = hn::Zero(d);
    for (size_t i = 0; i < vector_end; i += lanes) {
      const auto q = hn::LoadU(d, query + i);
      sum0 = hn::MulAdd(q, LoadWeights(d, rows[0] + i), sum0);
      sum1 = hn::MulAdd(q, LoadWeights(d, rows[1] + i), sum1);
      sum2 = hn::MulAdd(q, LoadWeights(d, rows[2] + i), sum2);
      sum3 = hn::MulAdd(q, LoadWeights(d, rows[3] + i), sum3);
    }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    // Whole 16-lane rows (head_dim 64, 128, ...): the four sums by one transpose-and-add tree, not
    // four horizontal sums, which were most of the port-5 work of a short context's scores.
    if constexpr (sizeof(sum0) == 64) {
      if (vector_end == head_dim) {
        const __m512 sums[4] = {sum0.raw, sum1.raw, sum2.raw, sum3.raw};
        _mm_storeu_ps(scores + p, _mm_mul_ps(SumOfFourVectors(sums), _mm_set1_ps(scale)));
        continue;
      }
    }
#endif
    float totals[4] = {hn::GetLane(hn::SumOfLanes(d, sum0)), hn::GetLane(hn::SumOfLanes(d, sum1)),
                       hn::GetLane(hn::SumOfLanes(d, sum2)), hn::GetLane(hn::SumOfLanes(d, sum3))};
    for (size_t k = 0; k < 4; ++k) {
      for (size_t i = vector_end; i < head_dim; ++i) totals[k] += query[i] * WidenOne(rows[k] + i);
      scores[p + k] = totals[k] * scale;
    }
  }
  for (; p < positions; ++p) {
    const T* row = keys + p * stride;
    auto sum = hn::Zero(d);
    for (size_t i = 0; i < vector_end; i += lanes)
      sum = hn::MulAdd(hn::LoadU(d, query + i), LoadWeights(d, row + i), sum);
    float total = hn::GetLane(hn::SumOfLanes(d, sum));
    for (size_t i = vector_end; i < head_dim; ++i) total += query[i] * WidenOne(row + i);
    scores[p] = total * scale;
  }
}

// In place: scores become exp(score - max) / sum, the exp vectorized
// (Highway's, within a few ulp).
void Softmax(float* HWY_RESTRICT scores, size_t positions) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  float maximum = -std::numeric_limits<float>::infinity();
  for (size_t p = 0; p < positions; ++p) maximum = std::max(maximum, scores[p]);
  const auto shift = hn::Set(d, maximum);
  auto sums = hn::Zero(d);
  size_t p = 0;
  for (; p + lanes <= positions; p += lanes) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, scores + p), shift));
    hn::StoreU(e, d, scores + p);
    sums = hn::Add(sums, e);
  }
  float total = hn::GetLane(hn::SumOfLanes(d, sums));
  for (; p < positions; ++p) total += (scores[p] = std::exp(scores[p] - maximum));
  const float inverse = 1.0f / total;
  for (p = 0; p < positions; ++p) scores[p] *= inverse;
}

// out[first..first + count * lanes) = sum_p weights[p] * row p, count <=
// kMaxAccumulators vectors held in registers across the whole pass.
constexpr size_t kMaxAccumulators = 8;

template <typename T>
void WeightedValues(const float* HWY_RESTRICT weights, const T* HWY_RESTRICT values, size_t stride, size_t positions,
                    size_t first, size_t count, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  hn::Vec<decltype(d)> sums[kMaxAccumulators];
  for (size_t v = 0; v < kMaxAccumulators; ++v) sums[v] = hn::Zero(d);
  for (size_t p = 0; p < positions; ++p) {
    const auto weight = hn::Set(d, weights[p]);
    const T* row = values + p * stride + first;
    for (size_t v = 0; v < kMaxAccumulators; ++v) {
      if (v < count) sums[v] = hn::MulAdd(weight, LoadWeights(d, row + v * lanes), sums[v]);
    }
  }
  for (size_t v = 0; v < count; ++v) hn::StoreU(sums[v], d, out + first + v * lanes);
}

template <typename T>
void AttentionHeadT(const AttentionHead& head, float* HWY_RESTRICT scores, float* HWY_RESTRICT out) {
  const T* keys = reinterpret_cast<const T*>(head.keys);
  const T* values = reinterpret_cast<const T*>(head.values);
  Scores(head.query, keys, head.row_stride, head.positions, head.head_dim, head.scale, scores);
  Softmax(scores, head.positions);
  const size_t lanes = hn::Lanes(hn::ScalableTag<float>());
  const size_t vectors = head.head_dim / lanes;
  for (size_t first = 0; first < vectors; first += kMaxAccumulators) {
    WeightedValues(scores, values, head.row_stride, head.positions, first * lanes,
                   std::min(kMaxAccumulators, vectors - first), out);
  }
  for (size_t i = vectors * lanes; i < head.head_dim; ++i) {
    float sum = 0;
    for (size_t p = 0; p < head.positions; ++p) sum += scores[p] * WidenOne(values + p * head.row_stride + i);
    out[i] = sum;
  }
}

void AttentionHeadF32(const AttentionHead& head, float* scores, float* out) {
  AttentionHeadT<float>(head, scores, out);
}
void AttentionHeadF16(const AttentionHead& head, float* scores, float* out) {
  AttentionHeadT<hwy::float16_t>(head, scores, out);
}
void AttentionHeadBF16(const AttentionHead& head, float* scores, float* out) {
  AttentionHeadT<hwy::bfloat16_t>(head, scores, out);
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(AttentionHeadF32);
HWY_EXPORT(AttentionHeadF16);
HWY_EXPORT(AttentionHeadBF16);

void attention_head(const AttentionHead& head, std::span<float> scratch, std::span<float> out) {
  check(head.positions > 0 && scratch.size() >= head.positions && out.size() >= head.head_dim,
        "internal: attention_head needs ", head.positions, " scratch floats and ", head.head_dim, " outputs");
  switch (head.dtype) {
    case DType::F32:
      return HWY_DYNAMIC_DISPATCH(AttentionHeadF32)(head, scratch.data(), out.data());
    case DType::F16:
      return HWY_DYNAMIC_DISPATCH(AttentionHeadF16)(head, scratch.data(), out.data());
    case DType::BF16:
      return HWY_DYNAMIC_DISPATCH(AttentionHeadBF16)(head, scratch.data(), out.data());
    default:
      fail("internal: attention_head on a ", dtype_name(head.dtype), " cache");
  }
}

}  // namespace hlwq
#endif  // HWY_ONCE
