// The SwiGLU gate of llama / qwen MLPs: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#pragma once

#include <span>

namespace hlwq {

// gate and up have the same size; out may alias gate.
void silu_mul(std::span<const float> gate, std::span<const float> up, std::span<float> out);

}  // namespace hlwq
