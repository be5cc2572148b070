// Partial rotary position embedding (Qwen3.5's full-attention layers): only the first rotary_dim
// values of each head rotate (rotary_dim = head_dim * partial_rotary_factor, 64 of 256 in the
// releases), in the rotate-half layout: value i pairs with value i + rotary_dim / 2, for
// i < rotary_dim / 2, turned by position * theta^(-2i / rotary_dim); values from rotary_dim on pass
// through. Qwen3.5's multimodal rope sections (mrope_section) give every section the same position for
// text tokens, so for text they collapse to this plain rotation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hlwq {

// rotary_dim / 2 inverse frequencies theta^(-2i / rotary_dim), in double.
std::vector<double> partial_rotary_inverse_frequencies(int64_t rotary_dim, double theta);

// Rotates the first rotary_dim values of every head of x (heads x head_dim values of one token).
void apply_partial_rotary(std::span<float> x, int64_t head_dim, int64_t rotary_dim, int64_t position,
                          std::span<const double> inverse_frequencies);

}  // namespace hlwq
