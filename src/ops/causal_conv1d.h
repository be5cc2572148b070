// The causal depthwise convolution of a gated delta-net layer (Qwen3.5's linear attention), with SiLU:
// each channel c of token t is silu(sum_j weight[c][j] * input[t - (kernel - 1) + j]), where inputs
// before the first token of the call come from the conv state (the last kernel - 1 inputs of the
// previous call; zeros for a new sequence). No bias (Qwen3.5's conv1d has none).
//
// Layouts (row-major, float):
//   input, out  tokens x channels       (channels = 2 * key_dim + value_dim, in in_proj_qkv's order q|k|v)
//   weight      channels x kernel       (transformers' conv1d.weight [channels, 1, kernel] squeezed;
//                                        weight[c][kernel - 1] multiplies the newest input)
//   state       (kernel - 1) x channels (oldest input first), read and replaced by the last kernel - 1
//                                        inputs (those of this call, preceded by older state when the
//                                        call has fewer than kernel - 1 tokens)
// Prefill then single steps gives the same outputs as one call over all the tokens, bit for bit.
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// out must not alias input. Allocates nothing.
void causal_conv1d_silu(std::span<const float> input, int64_t channels, std::span<const float> weight,
                        int64_t kernel, std::span<float> state, std::span<float> out);

// Plain loops over a zero-padded copy of state + input, sums in double: what the tests compare against.
void causal_conv1d_silu_reference(std::span<const float> input, int64_t channels, std::span<const float> weight,
                                  int64_t kernel, std::span<float> state, std::span<float> out);

}  // namespace hlwq
