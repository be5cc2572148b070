// The per-token, per-value-head gates of a gated delta-net layer, from the in_proj_a and in_proj_b
// outputs:
//     decay g = -exp(A_log) * softplus(a + dt_bias)     (log of the state's decay factor, <= 0)
//     beta    = sigmoid(b)                              (the delta rule's write strength)
// softplus(x) = log(1 + exp(x)), returning x itself above 20 as torch does.
// Layouts: a, b, decay, beta are tokens x value_heads; A_log and dt_bias are value_heads (stored F32 in
// the published checkpoints; A_log is read in float even where the model runs in bfloat16).
#pragma once

#include <span>

namespace hlwq {

void delta_net_gates(std::span<const float> a, std::span<const float> b, std::span<const float> a_log,
                     std::span<const float> dt_bias, std::span<float> decay, std::span<float> beta);

}  // namespace hlwq
