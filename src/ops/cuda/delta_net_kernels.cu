#include "ops/cuda/delta_net_kernels.h"

#include "core/error.h"
#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/launch.cuh"

namespace hlwq::cuda {

namespace {

constexpr int kThreads = kElementwiseThreads;

__device__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void split_query_and_gate_kernel(const float* projected, int64_t total, int64_t head_dim, float* query,
                                            float* gate) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t head_row = i / head_dim, within = i % head_dim;
    const float* source = projected + head_row * 2 * head_dim;
    query[i] = source[within];
    gate[i] = source[head_dim + within];
  }
}

__global__ void sigmoid_gate_kernel(float* x, const float* gate, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    x[i] *= sigmoid(gate[i]);
  }
}

// One block per row: the sum of squares in double, as the CPU op makes it.
__global__ void gated_rms_norm_kernel(const float* x, const float* z, const float* weight, int64_t width, double eps,
                                      float* out) {
  __shared__ double partial[32];
  const float* row = x + blockIdx.x * width;
  const float* gate = z + blockIdx.x * width;
  float* out_row = out + blockIdx.x * width;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += static_cast<double>(row[i]) * row[i];
  sum = block_sum(sum, partial);
  const float inverse_rms = static_cast<float>(1.0 / sqrt(sum / static_cast<double>(width) + eps));
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    out_row[i] = row[i] * inverse_rms * weight[i] * (gate[i] * sigmoid(gate[i]));
  }
}

// One thread per channel walks the rows in order: each row reads kernel - 1 older inputs from its
// sequence's conv state and shifts its own input in. A thread owns its channel in every sequence's
// state, so no two threads touch the same value.
__global__ void delta_net_conv_kernel(DeltaNetStateView state, const float* mixed, const float* weight, int64_t rows,
                                      const int32_t* places, float* out) {
  const int64_t channels = state.channels, kernel = state.conv_kernel;
  const int64_t channel = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (channel >= channels) return;
  const float* taps = weight + channel * kernel;
  for (int64_t row = 0; row < rows; ++row) {
    float* history = state.layer + places[2 * row] * state.sequence_stride + channel;  // (kernel - 1) x channels
    if (places[2 * row + 1] == 0) {
      for (int64_t j = 0; j + 1 < kernel; ++j) history[j * channels] = 0.0f;
    }
    const float input = mixed[row * channels + channel];
    float sum = taps[kernel - 1] * input;
    for (int64_t j = 0; j + 1 < kernel; ++j) sum += taps[j] * history[j * channels];
    for (int64_t j = 0; j + 2 < kernel; ++j) history[j * channels] = history[(j + 1) * channels];
    history[(kernel - 2) * channels] = input;
    out[row * channels + channel] = sum * sigmoid(sum);
  }
}

// One warp per (value head, 32 value columns): lane j keeps column j of the head's state S
// (key_dim x value_dim) in registers while consecutive rows continue the same sequence, and writes it
// back when the sequence changes and at the end. Each warp normalizes its key head's q and k itself
// (key_dim values: cheaper than a second kernel and a round trip through memory).
template <int kKeyDim>
__global__ void delta_net_rule_kernel(DeltaNetStateView state, const float* mixed, const float* a, const float* b,
                                      const float* a_log, const float* dt_bias, int64_t rows, const int32_t* places,
                                      float* out) {
  constexpr int kPerLane = (kKeyDim + 31) / 32;
  __shared__ float query[kKeyDim], key[kKeyDim];
  const int64_t head = blockIdx.x;
  const int lane = threadIdx.x;
  const int64_t column = blockIdx.y * 32 + lane;
  const int64_t value_dim = state.value_head_dim, key_heads = state.key_heads, value_heads = state.value_heads;
  const bool active = column < value_dim;
  const int64_t key_head = head / (value_heads / key_heads);
  const int64_t channels = state.channels, key_width = key_heads * kKeyDim;
  const int64_t conv_floats = (state.conv_kernel - 1) * channels;
  const float query_scale = rsqrtf(static_cast<float>(kKeyDim));
  const float decay_rate = expf(a_log[head]);
  float s[kKeyDim];
  int32_t held = -1;  // the sequence whose column is in s
  for (int64_t row = 0; row < rows; ++row) {
    const int32_t sequence = places[2 * row], position = places[2 * row + 1];
    float* stored = state.layer + sequence * state.sequence_stride + conv_floats + head * kKeyDim * value_dim + column;
    if (sequence != held || position == 0) {
      if (held >= 0 && active) {
        float* previous = state.layer + held * state.sequence_stride + conv_floats + head * kKeyDim * value_dim + column;
        for (int i = 0; i < kKeyDim; ++i) previous[i * value_dim] = s[i];
      }
      for (int i = 0; i < kKeyDim; ++i) s[i] = (position == 0 || !active) ? 0.0f : stored[i * value_dim];
      held = sequence;
    }
    // q and k of the key head, L2-normalized (eps 1e-6 on the sum of squares), q times key_dim^-0.5.
    const float* source = mixed + row * channels + key_head * kKeyDim;
    float query_squares = 0, key_squares = 0;
    float query_part[kPerLane], key_part[kPerLane];
    for (int p = 0; p < kPerLane; ++p) {
      const int i = lane + 32 * p;
      query_part[p] = i < kKeyDim ? source[i] : 0.0f;
      key_part[p] = i < kKeyDim ? source[key_width + i] : 0.0f;
      query_squares += query_part[p] * query_part[p];
      key_squares += key_part[p] * key_part[p];
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      query_squares += __shfl_xor_sync(0xffffffffu, query_squares, offset);
      key_squares += __shfl_xor_sync(0xffffffffu, key_squares, offset);
    }
    const float query_factor = query_scale * rsqrtf(query_squares + 1e-6f);
    const float key_factor = rsqrtf(key_squares + 1e-6f);
    __syncwarp();  // the previous row's reads of query/key are done
    for (int p = 0; p < kPerLane; ++p) {
      const int i = lane + 32 * p;
      if (i < kKeyDim) {
        query[i] = query_part[p] * query_factor;
        key[i] = key_part[p] * key_factor;
      }
    }
    __syncwarp();
    const float x = a[row * value_heads + head] + dt_bias[head];
    const float softplus = x > 20.0f ? x : log1pf(expf(x));
    const float decay = expf(-decay_rate * softplus);
    const float beta = sigmoid(b[row * value_heads + head]);
    const float value = active ? mixed[row * channels + 2 * key_width + head * value_dim + column] : 0.0f;
    float predicted = 0;
    for (int i = 0; i < kKeyDim; ++i) {
      s[i] *= decay;
      predicted += s[i] * key[i];
    }
    const float delta = beta * (value - predicted);
    float read = 0;
    for (int i = 0; i < kKeyDim; ++i) {
      s[i] += key[i] * delta;
      read += s[i] * query[i];
    }
    if (active) out[row * value_heads * value_dim + head * value_dim + column] = read;
  }
  if (held >= 0 && active) {
    float* last = state.layer + held * state.sequence_stride + conv_floats + head * kKeyDim * value_dim + column;
    for (int i = 0; i < kKeyDim; ++i) last[i * value_dim] = s[i];
  }
}

template <int kKeyDim>
void launch_rule(const DeltaNetStateView& state, const float* mixed, const float* a, const float* b,
                 const float* a_log, const float* dt_bias, int64_t rows, const int32_t* places, float* out,
                 cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(state.value_heads), static_cast<unsigned>((state.value_head_dim + 31) / 32));
  delta_net_rule_kernel<kKeyDim><<<grid, 32, 0, stream>>>(state, mixed, a, b, a_log, dt_bias, rows, places, out);
}

}  // namespace

void split_query_and_gate(const float* projected, int64_t rows_times_heads, int64_t head_dim, float* query,
                          float* gate, cudaStream_t stream) {
  const int64_t total = rows_times_heads * head_dim;
  if (total == 0) return;
  split_query_and_gate_kernel<<<blocks_for(total), kThreads, 0, stream>>>(projected, total, head_dim, query, gate);
  check_launch("split_query_and_gate");
}

void sigmoid_gate(float* x, const float* gate, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  sigmoid_gate_kernel<<<blocks_for(count), kThreads, 0, stream>>>(x, gate, count);
  check_launch("sigmoid_gate");
}

void gated_rms_norm_rows(const float* x, const float* z, const float* weight, int64_t rows, int64_t width, double eps,
                         float* out, cudaStream_t stream) {
  if (rows == 0) return;
  gated_rms_norm_kernel<<<static_cast<unsigned>(rows), 128, 0, stream>>>(x, z, weight, width, eps, out);
  check_launch("gated_rms_norm_rows");
}

void delta_net_conv(const DeltaNetStateView& state, const float* mixed, const float* weight, int64_t rows,
                    const int32_t* places, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  check(state.conv_kernel >= 2, "delta-net conv kernel ", state.conv_kernel);
  delta_net_conv_kernel<<<blocks_for(state.channels), kThreads, 0, stream>>>(state, mixed, weight, rows, places,
                                                                               out);
  check_launch("delta_net_conv");
}

void delta_net_rule(const DeltaNetStateView& state, const float* mixed, const float* a, const float* b,
                    const float* a_log, const float* dt_bias, int64_t rows, const int32_t* places, float* out,
                    cudaStream_t stream) {
  if (rows == 0) return;
  switch (state.key_head_dim) {
    case 16: launch_rule<16>(state, mixed, a, b, a_log, dt_bias, rows, places, out, stream); break;
    case 32: launch_rule<32>(state, mixed, a, b, a_log, dt_bias, rows, places, out, stream); break;
    case 64: launch_rule<64>(state, mixed, a, b, a_log, dt_bias, rows, places, out, stream); break;
    case 128: launch_rule<128>(state, mixed, a, b, a_log, dt_bias, rows, places, out, stream); break;
    case 256: launch_rule<256>(state, mixed, a, b, a_log, dt_bias, rows, places, out, stream); break;
    default:
      fail("the CUDA delta-net kernel is built for key heads of 16, 32, 64, 128 or 256 values, not ",
           state.key_head_dim);
  }
  check_launch("delta_net_rule");
}

}  // namespace hlwq::cuda
