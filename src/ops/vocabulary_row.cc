// The plain references of ops/vocabulary_row.h (the SIMD versions are ops/cpu/vocabulary_row.cc).
#include "ops/vocabulary_row.h"

#include <cmath>

namespace hlwq {

double log_sum_exp_reference(std::span<const float> x) {
  double maximum = -INFINITY;
  for (float value : x) maximum = std::max(maximum, static_cast<double>(value));
  double sum = 0;
  for (float value : x) sum += std::exp(static_cast<double>(value) - maximum);
  return std::log(sum) + maximum;
}

RowDivergence row_divergence_reference(std::span<const float> reference_log_probs, std::span<const float> logits,
                                       double logits_log_sum) {
  RowDivergence row;
  row.reference_log_sum = log_sum_exp_reference(reference_log_probs);
  for (size_t i = 0; i < logits.size(); ++i) {
    const double reference = reference_log_probs[i] - row.reference_log_sum;
    const double model = logits[i] - logits_log_sum;
    row.divergence += std::exp(reference) * (reference - model);
    if (reference_log_probs[i] > reference_log_probs[row.reference_argmax]) row.reference_argmax = i;
    if (logits[i] > logits[row.model_argmax]) row.model_argmax = i;
  }
  return row;
}

}  // namespace hlwq
