// The gated delta rule: the recurrence of a gated delta-net layer (Qwen3.5's linear attention).
// Per value head h, with key head kh = h / (value_heads / key_heads) (each key head serves that many
// consecutive value heads, transformers' repeat_interleave), a state S (key_dim x value_dim, F32)
// and, for each token,
//     S     <- exp(g) * S                       (decay; g <= 0)
//     delta  = beta * (v - S^T k)               (the delta rule: write only what S does not predict)
//     S     <- S + k delta^T
//     out    = S^T q
// q and k arrive L2-normalized, q already multiplied by 1 / sqrt(key_dim) (see l2_normalize.h).
//
// Layouts (row-major, float):
//   query, key   tokens x key_heads x key_dim
//   value, out   tokens x value_heads x value_dim
//   decay (g), beta   tokens x value_heads         (g = -exp(A_log) * softplus(a + dt_bias), beta = sigmoid(b))
//   state        value_heads x key_dim x value_dim (transformers' recurrent state [heads, k, v]);
//                zeros for a new sequence, updated in place
// Both forms give the same result up to float rounding; a prefill of N tokens then M single steps equals
// one pass over N + M tokens (the tests bound both).
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

class ThreadPool;

struct GatedDeltaShape {
  int64_t key_heads = 0;
  int64_t value_heads = 0;  // a multiple of key_heads
  int64_t key_dim = 0;
  int64_t value_dim = 0;
};

struct GatedDeltaInputs {
  std::span<const float> query, key, value, decay, beta;
};

// Token after token (decode: one token). Threads over value heads when pool is given and there is
// enough work. Allocates nothing once a thread has seen the largest value_dim.
void gated_delta_rule_recurrent(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<float> state,
                                std::span<float> out, ThreadPool* pool = nullptr);

// The chunked form for prefill: within each chunk of chunk_size tokens the delta-rule updates are
// solved together (a unit lower-triangular system of chunk_size rows), the state is read once per
// chunk and updated once per chunk. Transformers and FLA use chunks of 64. Threads over value heads.
void gated_delta_rule_chunked(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<float> state,
                              std::span<float> out, ThreadPool* pool = nullptr, int64_t chunk_size = 64);

// The recurrence in plain loops with double accumulators (state still F32 between tokens, as every
// implementation keeps it): what the tests compare both forms against.
void gated_delta_rule_reference(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<float> state,
                                std::span<float> out);

// Throws hlwq::Error naming the first span whose size does not fit `shape`; returns the token count.
int64_t gated_delta_tokens(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<const float> state,
                           std::span<const float> out);

}  // namespace hlwq
