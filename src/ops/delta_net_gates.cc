#include "ops/delta_net_gates.h"

#include <cmath>

#include "core/error.h"

namespace hlwq {

void delta_net_gates(std::span<const float> a, std::span<const float> b, std::span<const float> a_log,
                     std::span<const float> dt_bias, std::span<float> decay, std::span<float> beta) {
  const size_t heads = a_log.size();
  check(heads > 0 && dt_bias.size() == heads && a.size() % heads == 0 && b.size() == a.size() &&
            decay.size() == a.size() && beta.size() == a.size(),
        "delta_net_gates: sizes ", a.size(), "/", b.size(), "/", decay.size(), "/", beta.size(), " are not tokens x ",
        heads, " heads (A_log ", a_log.size(), ", dt_bias ", dt_bias.size(), ")");
  for (size_t i = 0; i < a.size(); ++i) {
    const size_t head = i % heads;
    const float x = a[i] + dt_bias[head];
    const float softplus = x > 20.0f ? x : std::log1p(std::exp(x));
    decay[i] = -std::exp(a_log[head]) * softplus;
    beta[i] = 1.0f / (1.0f + std::exp(-b[i]));
  }
}

}  // namespace hlwq
