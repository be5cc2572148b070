// The output gate of Qwen3.5's full-attention layers. q_proj yields 2 * head_dim values per head:
// for each head, head_dim query values then head_dim gate values (transformers views the output as
// [heads, 2 * head_dim] and splits each head's row in half). The attention output of every head is
// multiplied elementwise by sigmoid(gate) before o_proj.
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// projected: tokens x heads x (2 * head_dim). query, gate: tokens x heads x head_dim.
void split_query_and_gate(std::span<const float> projected, int64_t heads, int64_t head_dim, std::span<float> query,
                          std::span<float> gate);

// x[i] *= sigmoid(gate[i]) over equal-sized spans.
void apply_sigmoid_gate(std::span<float> x, std::span<const float> gate);

}  // namespace hlwq
