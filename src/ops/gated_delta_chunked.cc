// The chunked form of the gated delta rule (declared in gated_delta_rule.h), for prefill.
//
// Within a chunk starting from state S0, with G_t = g_1 + ... + g_t (the chunk's cumulative log decay),
// unrolling the recurrence gives the delta written at each token,
//     u_t = beta_t (v_t - exp(G_t) S0^T k_t) - sum_{s<t} beta_t exp(G_t - G_s) (k_t . k_s) u_s,
// a unit lower-triangular system solved by forward substitution, then
//     out_t = exp(G_t) S0^T q_t + sum_{s<=t} exp(G_t - G_s) (q_t . k_s) u_s
//     S_end = exp(G_L) S0 + sum_s exp(G_L - G_s) k_s u_s^T.
// Decays are exponentials of differences G_t - G_s <= 0, never ratios, so a strongly decaying chunk
// underflows to zero instead of dividing zero by zero. The state is read and written once per chunk
// instead of twice per token, and the chunk's work is matrix-by-matrix.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/gated_delta_rule.h"

namespace hlwq {
namespace {

struct ChunkScratch {
  std::vector<float> log_decay;    // chunk: G_t
  std::vector<float> keys;         // chunk x key_dim, contiguous copies of this head's keys
  std::vector<float> queries;      // chunk x key_dim
  std::vector<float> key_weights;  // chunk x chunk: beta_t exp(G_t - G_s) (k_t . k_s), s < t
  std::vector<float> query_weights;  // chunk x chunk: exp(G_t - G_s) (q_t . k_s), s <= t
  std::vector<float> deltas;       // chunk x value_dim: u_t
  std::vector<float> reads;        // chunk x value_dim: S0^T q_t

  void reserve(int64_t chunk, int64_t key_dim, int64_t value_dim) {
    log_decay.resize(chunk);
    keys.resize(chunk * key_dim);
    queries.resize(chunk * key_dim);
    key_weights.resize(chunk * chunk);
    query_weights.resize(chunk * chunk);
    deltas.resize(chunk * value_dim);
    reads.resize(chunk * value_dim);
  }
};

float dot(const float* a, const float* b, int64_t size) {
  float sum = 0.0f;
  for (int64_t i = 0; i < size; ++i) sum += a[i] * b[i];
  return sum;
}

// Tokens [first, first + length) of one value head.
void chunk_of_head(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, int64_t head, int64_t first,
                   int64_t length, float* state, float* out, ChunkScratch& scratch) {
  const int64_t key_dim = shape.key_dim, value_dim = shape.value_dim, heads = shape.value_heads;
  const int64_t key_head = head / (heads / shape.key_heads);
  float* log_decay = scratch.log_decay.data();
  float* keys = scratch.keys.data();
  float* queries = scratch.queries.data();
  float* key_weights = scratch.key_weights.data();
  float* query_weights = scratch.query_weights.data();
  float* deltas = scratch.deltas.data();
  float* reads = scratch.reads.data();

  float running = 0.0f;
  for (int64_t t = 0; t < length; ++t) {
    const int64_t token = first + t;
    running += inputs.decay[token * heads + head];
    log_decay[t] = running;
    const int64_t offset = (token * shape.key_heads + key_head) * key_dim;
    std::copy_n(inputs.key.data() + offset, key_dim, keys + t * key_dim);
    std::copy_n(inputs.query.data() + offset, key_dim, queries + t * key_dim);
  }
  for (int64_t t = 0; t < length; ++t) {
    const float beta = inputs.beta[(first + t) * heads + head];
    for (int64_t s = 0; s <= t; ++s) {
      const float decay = std::exp(log_decay[t] - log_decay[s]);
      query_weights[t * length + s] = decay * dot(queries + t * key_dim, keys + s * key_dim, key_dim);
      if (s < t) key_weights[t * length + s] = beta * decay * dot(keys + t * key_dim, keys + s * key_dim, key_dim);
    }
  }

  // S0^T k_t into deltas and S0^T q_t into reads, one state row at a time (the row stays in L1
  // while every token of the chunk reads it).
  std::fill_n(deltas, length * value_dim, 0.0f);
  std::fill_n(reads, length * value_dim, 0.0f);
  for (int64_t i = 0; i < key_dim; ++i) {
    const float* row = state + i * value_dim;
    for (int64_t t = 0; t < length; ++t) {
      const float ki = keys[t * key_dim + i], qi = queries[t * key_dim + i];
      float* predicted = deltas + t * value_dim;
      float* read = reads + t * value_dim;
      for (int64_t j = 0; j < value_dim; ++j) {
        predicted[j] += ki * row[j];
        read[j] += qi * row[j];
      }
    }
  }

  // Forward substitution: u_t = beta_t (v_t - exp(G_t) S0^T k_t) - sum_{s<t} key_weights[t][s] u_s.
  for (int64_t t = 0; t < length; ++t) {
    const int64_t token = first + t;
    const float beta = inputs.beta[token * heads + head];
    const float start_decay = std::exp(log_decay[t]);
    const float* v = inputs.value.data() + (token * heads + head) * value_dim;
    float* u = deltas + t * value_dim;
    for (int64_t j = 0; j < value_dim; ++j) u[j] = beta * (v[j] - start_decay * u[j]);
    for (int64_t s = 0; s < t; ++s) {
      const float weight = key_weights[t * length + s];
      const float* earlier = deltas + s * value_dim;
      for (int64_t j = 0; j < value_dim; ++j) u[j] -= weight * earlier[j];
    }
  }

  // Outputs: exp(G_t) S0^T q_t + sum_{s<=t} query_weights[t][s] u_s.
  for (int64_t t = 0; t < length; ++t) {
    const float start_decay = std::exp(log_decay[t]);
    const float* read = reads + t * value_dim;
    float* o = out + ((first + t) * heads + head) * value_dim;
    for (int64_t j = 0; j < value_dim; ++j) o[j] = start_decay * read[j];
    for (int64_t s = 0; s <= t; ++s) {
      const float weight = query_weights[t * length + s];
      const float* u = deltas + s * value_dim;
      for (int64_t j = 0; j < value_dim; ++j) o[j] += weight * u[j];
    }
  }

  // State: exp(G_L) S0 + sum_s exp(G_L - G_s) k_s u_s^T. The per-token factors go into log_decay.
  const float end = log_decay[length - 1];
  const float end_decay = std::exp(end);
  for (int64_t s = 0; s < length; ++s) log_decay[s] = std::exp(end - log_decay[s]);
  for (int64_t i = 0; i < key_dim; ++i) {
    float* row = state + i * value_dim;
    for (int64_t j = 0; j < value_dim; ++j) row[j] *= end_decay;
    for (int64_t s = 0; s < length; ++s) {
      const float factor = log_decay[s] * keys[s * key_dim + i];
      const float* u = deltas + s * value_dim;
      for (int64_t j = 0; j < value_dim; ++j) row[j] += factor * u[j];
    }
  }
}

}  // namespace

void gated_delta_rule_chunked(const GatedDeltaShape& shape, const GatedDeltaInputs& inputs, std::span<float> state,
                              std::span<float> out, ThreadPool* pool, int64_t chunk_size) {
  const int64_t tokens = gated_delta_tokens(shape, inputs, state, out);
  check(chunk_size > 0, "gated delta rule: chunk size ", chunk_size, " is not positive");
  if (tokens == 0) return;
  const int64_t chunk = std::min(chunk_size, tokens);
  const int64_t head_state = shape.key_dim * shape.value_dim;
  auto run_heads = [&](size_t begin, size_t end) {
    thread_local ChunkScratch scratch;
    scratch.reserve(chunk, shape.key_dim, shape.value_dim);
    for (size_t head = begin; head < end; ++head) {
      for (int64_t first = 0; first < tokens; first += chunk) {
        chunk_of_head(shape, inputs, static_cast<int64_t>(head), first, std::min(chunk, tokens - first),
                      state.data() + head * head_state, out.data(), scratch);
      }
    }
  };
  if (pool != nullptr && pool->size() > 1 && shape.value_heads > 1) {
    pool->parallel_for(static_cast<size_t>(shape.value_heads), run_heads);
  } else {
    run_heads(0, static_cast<size_t>(shape.value_heads));
  }
}

}  // namespace hlwq
