// CUDA kernels of Qwen3.5's hybrid layers: the gated attention's query/gate split and sigmoid gate,
// and the gated delta-net (causal conv, gated delta rule, gated RMSNorm). Each matches the CPU op of
// the same name in ops/ (the backend tests compare them on random inputs). Rows are a pass's rows
// with their (sequence, position) places in device memory (int32 pairs); the recurrent kernels walk
// the rows in order, so rows of one sequence must come in position order, and a row at position 0
// starts its sequence's state from zeros.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace hlwq::cuda {

// projected: rows x heads x (2 head_dim), per head the query then the gate.
void split_query_and_gate(const float* projected, int64_t rows_times_heads, int64_t head_dim, float* query,
                          float* gate, cudaStream_t stream);

// x[i] *= sigmoid(gate[i]).
void sigmoid_gate(float* x, const float* gate, int64_t count, cudaStream_t stream);

// out = x / sqrt(mean(x^2) + eps) * weight * silu(z) per width-wide row; out may alias x.
void gated_rms_norm_rows(const float* x, const float* z, const float* weight, int64_t rows, int64_t width, double eps,
                         float* out, cudaStream_t stream);

// Where one delta-net layer's states lie: per sequence, conv_state_floats then rule_state_floats.
struct DeltaNetStateView {
  float* layer = nullptr;  // the layer's first sequence
  int64_t sequence_stride = 0;
  int64_t key_heads = 0, value_heads = 0, key_head_dim = 0, value_head_dim = 0, conv_kernel = 0;
  int64_t channels = 0;  // 2 key_heads key_head_dim + value_heads value_head_dim
};

// out = silu(causal depthwise conv of mixed (rows x channels) with weight (channels x conv_kernel)),
// each row continuing its sequence's conv state.
void delta_net_conv(const DeltaNetStateView& state, const float* mixed, const float* weight, int64_t rows,
                    const int32_t* places, float* out, cudaStream_t stream);

// The gated delta rule from the conv's output (q | k | v per row), a and b (rows x value_heads),
// A_log and dt_bias; out: rows x value_heads x value_head_dim. Throws hlwq::Error for a
// key_head_dim the kernel was not built for (16, 32, 64, 128, 256).
void delta_net_rule(const DeltaNetStateView& state, const float* mixed, const float* a, const float* b,
                    const float* a_log, const float* dt_bias, int64_t rows, const int32_t* places, float* out,
                    cudaStream_t stream);

}  // namespace hlwq::cuda
