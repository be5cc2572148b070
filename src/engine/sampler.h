// Picks the next token from logits: greedy at temperature 0, else repetition penalty, top-k,
// temperature softmax, top-p, min-p, then a draw from a seeded std::mt19937_64 (same seed, same
// logits -> same tokens on every platform: the uniform draw is built from the raw 64-bit output).
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace hlwq {

struct SamplerOptions {
  float temperature = 0.0f;     // <= 0: greedy (argmax, lowest id on ties)
  int top_k = 0;                // 0: off
  float top_p = 1.0f;           // 1: off; keep the smallest set of top tokens with mass >= top_p
  float min_p = 0.0f;           // 0: off; drop tokens below min_p * the top probability
  float repeat_penalty = 1.0f;  // 1: off; llama.cpp rule: positive logits divided, negative multiplied
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws hlwq::Error for out-of-range options (negative top_k, top_p outside (0, 1], ...).
  explicit Sampler(const SamplerOptions& options);

  // `recent` are the tokens the repetition penalty applies to (each counted once).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> recent);

 private:
  SamplerOptions options_;
  std::mt19937_64 generator_;
};

}  // namespace hlwq
