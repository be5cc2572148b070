// The element-wise and per-row steps of a decoder layer on the GPU, over row-major float buffers in
// device memory (tokens x width). Each mirrors the CPU function of the same name in ops/ and is
// tested against it (tests/ops/cuda/transformer_kernels_test.cc). Launches are asynchronous on
// `stream` (so the CUDA backend can record them in a graph); errors of the launch itself throw
// hlwq::Error.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace hlwq::cuda {

// out[r, i] = weight[i] * (x[r, i] / sqrt(mean_i x[r, i]^2 + eps)); the sum of squares in double as on
// the CPU. out may be x.
void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t width, double eps, float* out,
                   cudaStream_t stream = nullptr);

// rows[r, i] += bias[i] for `count` rows of `width`.
void add_row_bias(float* rows, const float* bias, int64_t count, int64_t width, cudaStream_t stream = nullptr);

// Rotary embedding (the "rotate half" pairing of ops/rotary_embedding.h) of x = rows x
// (heads * head_dim), row r at position places[2 r + 1] (places: the pass's (sequence, position)
// pairs in device memory); the first 2 x rotary_half values of each head rotate (all of it, or
// partial rotary), the rest pass through. cosines and sines hold max_positions x rotary_half values made on
// the host in double; a position outside the table leaves its row unrotated (the host checks first).
void apply_rope_at_places(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rotary_half,
                          const int32_t* places, const float* cosines, const float* sines, int64_t max_positions,
                          cudaStream_t stream = nullptr);

// gate[i] = silu(gate[i]) * up[i].
void silu_mul(float* gate, const float* up, int64_t count, cudaStream_t stream = nullptr);

// gate[i] = gelu_tanh(gate[i]) * up[i], the gelu in double as on the CPU (gemma3's GeGLU).
void gelu_tanh_mul(float* gate, const float* up, int64_t count, cudaStream_t stream = nullptr);

// target[i] += addend[i].
void add_in_place(float* target, const float* addend, int64_t count, cudaStream_t stream = nullptr);

// Blocks until every launched kernel finished; throws the first asynchronous error.
void synchronize();

}  // namespace hlwq::cuda
