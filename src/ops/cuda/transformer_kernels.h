// The element-wise and per-row steps of a decoder layer on the GPU, over row-major float buffers in
// device memory (tokens x width). Each mirrors the CPU function of the same name in engine/ and is
// tested against it (tests/ops/cuda/transformer_kernels_test.cc). Launches are asynchronous on the
// default stream; errors of the launch itself throw hlwq::Error.
#pragma once

#include <cstdint>

namespace hlwq::cuda {

// out[r, i] = weight[i] * (x[r, i] / sqrt(mean_i x[r, i]^2 + eps)); the sum of squares in double as on
// the CPU. out may be x.
void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t width, double eps, float* out);

// rows[r, i] += bias[i] for `count` rows of `width`.
void add_row_bias(float* rows, const float* bias, int64_t count, int64_t width);

// Rotary embedding (the "rotate half" pairing of engine/rotary_embedding.h) of x = tokens x
// (heads * head_dim), token t at position first_position + t. cosines and sines hold
// positions x head_dim / 2 values computed on the host in double.
void apply_rope_rows(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t first_position,
                     const float* cosines, const float* sines);

// Rounds each value to the KV cache's storage type and back (what KvCache::store then read does).
enum class StorageRounding { none, f16, bf16 };
void round_to_storage(float* values, int64_t count, StorageRounding rounding);

// Causal attention of `tokens` queries at positions first_position .. over keys and values of
// positions 0 .. first_position + tokens - 1 (rows of kv_heads * head_dim); query head h reads kv
// head h / (heads / kv_heads); scores are q.k * scale (float(scale) as on the CPU). out: tokens x
// (heads * head_dim). Needs (first_position + tokens + head_dim) floats of shared memory per block:
// up to about 12k positions.
void causal_attention(const float* queries, const float* keys, const float* values, int64_t tokens,
                      int64_t first_position, int64_t heads, int64_t kv_heads, int64_t head_dim, double scale,
                      float* out);

// gate[i] = silu(gate[i]) * up[i].
void silu_mul(float* gate, const float* up, int64_t count);

// gate[i] = gelu_tanh(gate[i]) * up[i], the gelu in double as on the CPU (gemma3's GeGLU).
void gelu_tanh_mul(float* gate, const float* up, int64_t count);

// target[i] += addend[i].
void add_in_place(float* target, const float* addend, int64_t count);

// Blocks until every launched kernel finished; throws the first asynchronous error.
void synchronize();

}  // namespace hlwq::cuda
