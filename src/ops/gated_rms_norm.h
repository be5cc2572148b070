// The gated RMSNorm that closes a gated delta-net layer, per value head:
//     out = x / sqrt(mean(x^2) + eps) * weight * silu(z)
// Its weight is used as stored (initialised to ones), unlike the decoder's zero-centered norms that
// scale by 1 + weight; eps is the model's rms_norm_eps.
// Layouts: x, z, out are rows of weight.size() (value_dim) floats (tokens x value_heads rows).
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// out may alias x.
void gated_rms_norm(std::span<const float> x, std::span<const float> z, std::span<const float> weight, double eps,
                    std::span<float> out);

}  // namespace hlwq
