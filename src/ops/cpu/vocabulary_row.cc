// SIMD reductions over a vocabulary row: the exp in float (Highway's, within a few ulp), partial
// sums in float vectors flushed to a double every 32 vectors, so the rounding of a 152k-entry sum
// stays near that of 512 floats instead of growing with the vocabulary.
#include "ops/vocabulary_row.h"

#include <algorithm>
#include <cmath>
#include <limits>

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/vocabulary_row.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kVectorsPerFlush = 32;

float MaximumOf(const float* HWY_RESTRICT x, size_t count) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  float maximum = -std::numeric_limits<float>::infinity();
  bool any_nan = false;
  size_t i = 0;
  if (count >= lanes) {
    auto best = hn::LoadU(d, x);
    auto nan = hn::IsNaN(best);
    for (i = lanes; i + lanes <= count; i += lanes) {
      const auto v = hn::LoadU(d, x + i);
      best = hn::Max(best, v);  // x86's max drops a NaN operand: NaNs are tracked apart
      nan = hn::Or(nan, hn::IsNaN(v));
    }
    maximum = hn::GetLane(hn::MaxOfLanes(d, best));
    any_nan = !hn::AllFalse(d, nan);
  }
  for (; i < count; ++i) {
    maximum = std::max(maximum, x[i]);
    any_nan = any_nan || std::isnan(x[i]);
  }
  return any_nan ? std::numeric_limits<float>::quiet_NaN() : maximum;
}

// First index holding `value` (which is in x).
size_t FirstIndexOf(const float* HWY_RESTRICT x, size_t count, float value) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto target = hn::Set(d, value);
  size_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    const intptr_t lane = hn::FindFirstTrue(d, hn::Eq(hn::LoadU(d, x + i), target));
    if (lane >= 0) return i + static_cast<size_t>(lane);
  }
  for (; i < count; ++i) {
    if (x[i] == value) return i;
  }
  return 0;  // NaN rows: no value equals the maximum
}

double LogSumExp(const float* HWY_RESTRICT x, size_t count) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const float maximum = MaximumOf(x, count);
  if (!std::isfinite(maximum)) return maximum;  // +-inf or NaN: as the reference (log of inf or nan)
  const auto shift = hn::Set(d, maximum);
  double total = 0;
  size_t i = 0;
  while (i + lanes <= count) {
    auto sums = hn::Zero(d);
    for (size_t v = 0; v < kVectorsPerFlush && i + lanes <= count; ++v, i += lanes) {
      sums = hn::Add(sums, hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), shift)));
    }
    total += hn::GetLane(hn::SumOfLanes(d, sums));
  }
  for (; i < count; ++i) total += std::exp(static_cast<double>(x[i]) - maximum);
  return std::log(total) + maximum;
}

void Divergence(const float* HWY_RESTRICT reference, const float* HWY_RESTRICT logits, size_t count,
                double logits_log_sum, RowDivergence* row) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  row->reference_log_sum = LogSumExp(reference, count);
  // log q_i = (logits_i - M) - (log_sum - M) with M the largest logit: the float part is exact near
  // the top of the distribution, where the mass is, and the constant (log_sum - M) * sum p is added
  // in double (a float shift by log_sum itself would be off by up to ulp(log_sum)).
  const float model_maximum = MaximumOf(logits, count);
  const auto reference_shift = hn::Set(d, static_cast<float>(row->reference_log_sum));
  const auto model_shift = hn::Set(d, model_maximum);
  double divergence = 0, mass = 0;
  size_t i = 0;
  while (i + lanes <= count) {
    auto divergence_sums = hn::Zero(d), mass_sums = hn::Zero(d);
    for (size_t v = 0; v < kVectorsPerFlush && i + lanes <= count; ++v, i += lanes) {
      const auto p_log = hn::Sub(hn::LoadU(d, reference + i), reference_shift);
      const auto shifted_logit = hn::Sub(hn::LoadU(d, logits + i), model_shift);
      const auto p = hn::Exp(d, p_log);
      divergence_sums = hn::MulAdd(p, hn::Sub(p_log, shifted_logit), divergence_sums);
      mass_sums = hn::Add(mass_sums, p);
    }
    divergence += hn::GetLane(hn::SumOfLanes(d, divergence_sums));
    mass += hn::GetLane(hn::SumOfLanes(d, mass_sums));
  }
  for (; i < count; ++i) {
    const double p_log = reference[i] - row->reference_log_sum;
    const double p = std::exp(p_log);
    divergence += p * (p_log - (static_cast<double>(logits[i]) - model_maximum));
    mass += p;
  }
  row->divergence = divergence + (logits_log_sum - model_maximum) * mass;
  row->reference_argmax = FirstIndexOf(reference, count, MaximumOf(reference, count));
  row->model_argmax = FirstIndexOf(logits, count, model_maximum);
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(LogSumExp);
HWY_EXPORT(Divergence);

double log_sum_exp(std::span<const float> x) { return HWY_DYNAMIC_DISPATCH(LogSumExp)(x.data(), x.size()); }

RowDivergence row_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                             double logits_log_sum) {
  RowDivergence row;
  HWY_DYNAMIC_DISPATCH(Divergence)(reference_log_probs.data(), logits.data(), logits.size(), logits_log_sum, &row);
  return row;
}

}  // namespace hlwq
#endif  // HWY_ONCE
