#include "ops/causal_conv1d.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace hlwq {
namespace {

float silu(float x) { return x / (1.0f + std::exp(-x)); }

void check_sizes(std::span<const float> input, int64_t channels, std::span<const float> weight, int64_t kernel,
                 std::span<float> state, std::span<float> out) {
  check(channels > 0 && kernel > 0, "causal conv1d needs positive channels and kernel, got ", channels, " and ",
        kernel);
  check(input.size() % static_cast<size_t>(channels) == 0 && out.size() == input.size(),
        "causal conv1d input/output sizes ", input.size(), "/", out.size(), " are not tokens x ", channels);
  check(weight.size() == static_cast<size_t>(channels * kernel), "causal conv1d weight has ", weight.size(),
        " values, expected ", channels, " x ", kernel);
  check(state.size() == static_cast<size_t>(channels * (kernel - 1)), "causal conv1d state has ", state.size(),
        " values, expected ", kernel - 1, " x ", channels);
}

}  // namespace

void causal_conv1d_silu(std::span<const float> input, int64_t channels, std::span<const float> weight,
                        int64_t kernel, std::span<float> state, std::span<float> out) {
  check_sizes(input, channels, weight, kernel, state, out);
  const int64_t tokens = static_cast<int64_t>(input.size()) / channels;
  const int64_t history = kernel - 1;
  // Tap j of token t reads the input at time t - history + j: a row of the state while that is
  // negative (state row history + time), else an input row.
  for (int64_t t = 0; t < tokens; ++t) {
    float* row = out.data() + t * channels;
    std::fill(row, row + channels, 0.0f);
    for (int64_t j = 0; j < kernel; ++j) {
      const int64_t time = t - history + j;
      const float* source = time < 0 ? state.data() + (history + time) * channels : input.data() + time * channels;
      // Weight is channels x kernel: the tap's weights are strided by kernel; kernel is 4 in every
      // Qwen3.5, so the strided read stays in the same cache lines as its neighbours' taps.
      const float* tap = weight.data() + j;
      for (int64_t c = 0; c < channels; ++c) row[c] += tap[c * kernel] * source[c];
    }
    for (int64_t c = 0; c < channels; ++c) row[c] = silu(row[c]);
  }
  if (history == 0) return;
  // New state: the last `history` rows of (state, input).
  if (tokens >= history) {
    std::copy(input.end() - history * channels, input.end(), state.begin());
  } else {
    const int64_t kept = history - tokens;
    std::copy(state.begin() + tokens * channels, state.end(), state.begin());
    std::copy(input.begin(), input.end(), state.begin() + kept * channels);
  }
}

void causal_conv1d_silu_reference(std::span<const float> input, int64_t channels, std::span<const float> weight,
                                  int64_t kernel, std::span<float> state, std::span<float> out) {
  check_sizes(input, channels, weight, kernel, state, out);
  const int64_t tokens = static_cast<int64_t>(input.size()) / channels;
  const int64_t history = kernel - 1;
  std::vector<float> padded(state.begin(), state.end());
  padded.insert(padded.end(), input.begin(), input.end());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < channels; ++c) {
      double sum = 0;
      for (int64_t j = 0; j < kernel; ++j) sum += double{weight[c * kernel + j]} * padded[(t + j) * channels + c];
      out[t * channels + c] = static_cast<float>(sum / (1.0 + std::exp(-sum)));
    }
  }
  std::copy(padded.end() - history * channels, padded.end(), state.begin());
}

}  // namespace hlwq
