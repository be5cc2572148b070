// RMSNorm as transformers computes it for llama / qwen: x * rsqrt(mean(x^2) + eps) * weight, in float
// with the mean of squares summed in double (a few rows per token: cheap next to the matmuls).
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// Normalizes each of the x.size() / weight.size() consecutive rows of x into out (may alias x).
void rms_norm(std::span<const float> x, std::span<const float> weight, double eps, std::span<float> out);

}  // namespace hlwq
