// Rotary position embedding (RoPE) in the Hugging Face layout: within each head, dimension i and
// i + head_dim/2 form a pair rotated by position * inverse_frequency[i], with Llama 3 or linear
// frequency scaling applied to the inverse frequencies.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hlwq {

enum class RopeScalingType { none, linear, llama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

// head_dim / 2 inverse frequencies theta^(-2i / head_dim), scaled as `scaling` says.
std::vector<double> rope_inverse_frequencies(int64_t head_dim, double theta, const RopeScaling& scaling);

// Rotates every head (x holds heads x head_dim values of one token) for `position`.
void apply_rope(std::span<float> x, int64_t head_dim, int64_t position, std::span<const double> inverse_frequencies);

// The rotation of one position: cos and sin of position * inverse_frequency[i] (computed in double,
// rounded to float). Every layer of a pass rotates by the same angles, so the forward pass makes
// them once per token instead of twice per layer (60 sincos per frequency and token on SmolLM2).
struct RopeAngles {
  std::vector<float> cosines, sines;
};
RopeAngles rope_angles(int64_t position, std::span<const double> inverse_frequencies);

// apply_rope with angles made by rope_angles (head_dim / 2 of them): the same result bit for bit.
// With fewer angles (rotary_dim / 2) only each head's first rotary_dim values rotate, in pairs
// (i, i + rotary_dim / 2): Qwen3.5's partial rotary embedding.
void apply_rope(std::span<float> x, int64_t head_dim, const RopeAngles& angles);

}  // namespace hlwq
