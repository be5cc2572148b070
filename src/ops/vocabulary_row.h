// Reductions over one row of next-token scores (a whole vocabulary: 49k to 152k floats per scored
// token), the per-token work of perplexity and KL-divergence. With a GPU computing the logits they
// are most of the time, so each has a SIMD version (ops/cpu/vocabulary_row.cc, Highway exp in float,
// sums flushed to double every 512 values) beside a plain reference in double.
#pragma once

#include <cstddef>
#include <span>

namespace hlwq {

// log(sum_i exp(x_i)), shifted by the maximum.
double log_sum_exp_reference(std::span<const float> x);
// SIMD; within 1e-6 (absolute) of the reference for rows whose values lie within 80 of the maximum.
double log_sum_exp(std::span<const float> x);

struct RowDivergence {
  double divergence = 0;        // KL(P || Q), may round slightly below 0
  size_t reference_argmax = 0;  // first index of the largest reference value
  size_t model_argmax = 0;      // first index of the largest logit
  double reference_log_sum = 0;  // log sum exp(reference_log_probs): P = exp(reference - this)
};

// P = softmax(reference_log_probs), Q = softmax(logits) with logits_log_sum = log_sum_exp(logits).
// The spans have the same size (checked by the caller).
RowDivergence row_divergence_reference(std::span<const float> reference_log_probs, std::span<const float> logits,
                                       double logits_log_sum);
// SIMD; divergence within 2e-6 (absolute) of the reference.
RowDivergence row_divergence(std::span<const float> reference_log_probs, std::span<const float> logits,
                             double logits_log_sum);

}  // namespace hlwq
