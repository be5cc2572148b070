// L2 normalization of rows, as the gated delta-net applies it to each query and key head:
// x * scale / sqrt(sum(x^2) + eps), with eps added to the sum of squares (not a floor on the norm),
// as transformers' l2norm and FLA do; Qwen3.5 uses eps = 1e-6. The delta-net passes
// scale = 1 / sqrt(key_dim) for queries (the read-out scale folded in) and 1 for keys.
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// Normalizes each of the x.size() / row_size consecutive rows of x into out (may alias x).
void l2_normalize(std::span<const float> x, int64_t row_size, double eps, float scale, std::span<float> out);

}  // namespace hlwq
