// Rotary position embedding (RoPE) in the Hugging Face layout: within each head, dimension i and
// i + head_dim/2 form a pair rotated by position * inverse_frequency[i], with Llama 3 or linear
// frequency scaling applied to the inverse frequencies.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/model_config.h"

namespace hlwq {

// head_dim / 2 inverse frequencies theta^(-2i / head_dim), scaled as `scaling` says.
std::vector<double> rope_inverse_frequencies(int64_t head_dim, double theta, const RopeScaling& scaling);

// Rotates every head (x holds heads x head_dim values of one token) for `position`.
void apply_rope(std::span<float> x, int64_t head_dim, int64_t position, std::span<const double> inverse_frequencies);

}  // namespace hlwq
