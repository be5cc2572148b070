// The token-by-token forms of the gated delta rule (the chunked form is in gated_delta_chunked.cc).
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/gated_delta_rule.h"

namespace hlwq {

int64_t gated_delta_tokens(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<const float> state,
                           std::span<const float> out) {
  check(shape.key_heads > 0 && shape.value_heads > 0 && shape.key_dim > 0 && shape.value_dim > 0,
        "gated delta rule needs positive head counts and sizes");
  check(shape.value_heads % shape.key_heads == 0, "gated delta rule: ", shape.value_heads,
        " value heads are not a multiple of ", shape.key_heads, " key heads");
  const size_t key_row = static_cast<size_t>(shape.key_heads * shape.key_dim);
  const size_t value_row = static_cast<size_t>(shape.value_heads * shape.value_dim);
  const size_t heads = static_cast<size_t>(shape.value_heads);
  check(inputs.value.size() % value_row == 0, "gated delta rule: value has ", inputs.value.size(),
        " floats, not a multiple of ", value_row);
  const size_t tokens = inputs.value.size() / value_row;
  check(inputs.query.size() == tokens * key_row, "gated delta rule: query has ", inputs.query.size(),
        " floats, expected ", tokens * key_row);
  check(inputs.key.size() == tokens * key_row, "gated delta rule: key has ", inputs.key.size(), " floats, expected ",
        tokens * key_row);
  check(inputs.decay.size() == tokens * heads, "gated delta rule: decay has ", inputs.decay.size(),
        " floats, expected ", tokens * heads);
  check(inputs.beta.size() == tokens * heads, "gated delta rule: beta has ", inputs.beta.size(),
        " floats, expected ", tokens * heads);
  check(out.size() == tokens * value_row, "gated delta rule: out has ", out.size(), " floats, expected ",
        tokens * value_row);
  check(state.size() == heads * static_cast<size_t>(shape.key_dim * shape.value_dim), "gated delta rule: state has ",
        state.size(), " floats, expected ", shape.value_heads, " x ", shape.key_dim, " x ", shape.value_dim);
  return static_cast<int64_t>(tokens);
}

namespace {

// All tokens of one value head. kv_memory and delta: value_dim floats of scratch.
void recurrent_head(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, int64_t tokens, int64_t head,
                    float* state, float* out, float* kv_memory, float* delta) {
  const int64_t key_dim = shape.key_dim, value_dim = shape.value_dim;
  const int64_t key_head = head / (shape.value_heads / shape.key_heads);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* q = inputs.query.data() + (t * shape.key_heads + key_head) * key_dim;
    const float* k = inputs.key.data() + (t * shape.key_heads + key_head) * key_dim;
    const float* v = inputs.value.data() + (t * shape.value_heads + head) * value_dim;
    float* o = out + (t * shape.value_heads + head) * value_dim;
    const float decay = std::exp(inputs.decay[t * shape.value_heads + head]);
    const float beta = inputs.beta[t * shape.value_heads + head];
    // First pass over S: decay it and read S^T k. Second pass: the rank-one update and S^T q.
    for (int64_t j = 0; j < value_dim; ++j) kv_memory[j] = 0.0f;
    for (int64_t i = 0; i < key_dim; ++i) {
      float* row = state + i * value_dim;
      const float ki = k[i];
      for (int64_t j = 0; j < value_dim; ++j) {
        row[j] *= decay;
        kv_memory[j] += ki * row[j];
      }
    }
    for (int64_t j = 0; j < value_dim; ++j) delta[j] = (v[j] - kv_memory[j]) * beta;
    for (int64_t j = 0; j < value_dim; ++j) o[j] = 0.0f;
    for (int64_t i = 0; i < key_dim; ++i) {
      float* row = state + i * value_dim;
      const float ki = k[i], qi = q[i];
      for (int64_t j = 0; j < value_dim; ++j) {
        row[j] += ki * delta[j];
        o[j] += qi * row[j];
      }
    }
  }
}

// Below this many state updates per call, waking the pool costs more than it saves.
constexpr int64_t parallel_threshold = 1 << 16;

}  // namespace

void gated_delta_rule_recurrent(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<float> state,
                                std::span<float> out, ThreadPool* pool) {
  const int64_t tokens = gated_delta_tokens(shape, inputs, state, out);
  const int64_t head_state = shape.key_dim * shape.value_dim;
  auto run_heads = [&](size_t begin, size_t end) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < static_cast<size_t>(2 * shape.value_dim)) scratch.resize(2 * shape.value_dim);
    for (size_t head = begin; head < end; ++head) {
      recurrent_head(shape, inputs, tokens, static_cast<int64_t>(head), state.data() + head * head_state, out.data(),
                     scratch.data(), scratch.data() + shape.value_dim);
    }
  };
  const bool parallel = pool != nullptr && pool->size() > 1 && shape.value_heads > 1 &&
                        tokens * shape.value_heads * head_state >= parallel_threshold;
  if (parallel) {
    pool->parallel_for(static_cast<size_t>(shape.value_heads), run_heads);
  } else {
    run_heads(0, static_cast<size_t>(shape.value_heads));
  }
}

void gated_delta_rule_reference(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<float> state,
                                std::span<float> out) {
  const int64_t tokens = gated_delta_tokens(shape, inputs, state, out);
  const int64_t key_dim = shape.key_dim, value_dim = shape.value_dim;
  const int64_t group = shape.value_heads / shape.key_heads;
  std::vector<double> kv_memory(value_dim), delta(value_dim);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t head = 0; head < shape.value_heads; ++head) {
      const int64_t key_head = head / group;
      float* s = state.data() + head * key_dim * value_dim;
      const float* q = inputs.query.data() + (t * shape.key_heads + key_head) * key_dim;
      const float* k = inputs.key.data() + (t * shape.key_heads + key_head) * key_dim;
      const float* v = inputs.value.data() + (t * shape.value_heads + head) * value_dim;
      const double decay = std::exp(double{inputs.decay[t * shape.value_heads + head]});
      const double beta = inputs.beta[t * shape.value_heads + head];
      for (int64_t j = 0; j < value_dim; ++j) {
        double sum = 0;
        for (int64_t i = 0; i < key_dim; ++i) sum += decay * s[i * value_dim + j] * k[i];
        kv_memory[j] = sum;
        delta[j] = (v[j] - sum) * beta;
      }
      for (int64_t j = 0; j < value_dim; ++j) {
        double sum = 0;
        for (int64_t i = 0; i < key_dim; ++i) {
          const double updated = decay * s[i * value_dim + j] + double{k[i]} * delta[j];
          s[i * value_dim + j] = static_cast<float>(updated);
          sum += updated * q[i];
        }
        out[(t * shape.value_heads + head) * value_dim + j] = static_cast<float>(sum);
      }
    }
  }
}

}  // namespace hlwq
