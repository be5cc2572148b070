// The gates of the MLPs: SwiGLU (llama / qwen) out = silu(gate) * up, silu(g) = g / (1 + exp(-g));
// GeGLU (gemma3) out = gelu_tanh(gate) * up with transformers' gelu_pytorch_tanh.
#pragma once

#include <span>

namespace hlwq {

// gate and up have the same size; out may alias gate. SIMD with Highway's exp (1 ulp): within a
// few float roundings of the formula in double; a NaN gate gives NaN.
void silu_mul(std::span<const float> gate, std::span<const float> up, std::span<float> out);

// gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3))), evaluated in double (the
// intermediate_size values per token cost little next to the matmuls). out may alias gate.
void gelu_tanh_mul(std::span<const float> gate, std::span<const float> up, std::span<float> out);

}  // namespace hlwq
