#include "engine/forward.h"

#include <cmath>
#include <optional>
#include <string>

#include "core/error.h"
#include "engine/activation.h"
#include "engine/attention.h"
#include "engine/rms_norm.h"
#include "engine/rotary_embedding.h"
#include "ops/linear.h"

namespace hlwq {

namespace {

void add_bias(std::span<float> rows, std::span<const float> bias) {
  if (bias.empty()) return;
  for (size_t i = 0; i < rows.size(); ++i) rows[i] += bias[i % bias.size()];
}

// First index of a NaN, if any.
std::optional<size_t> find_nan(std::span<const float> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) return i;
  }
  return std::nullopt;
}

// Scratch buffers of one pass, sized for `tokens` tokens.
struct Activations {
  Activations(const ModelConfig& config, int64_t tokens)
      : hidden(tokens * config.hidden_size),
        normed(tokens * config.hidden_size),
        queries(tokens * config.heads * config.head_dim),
        keys(tokens * config.kv_heads * config.head_dim),
        values(tokens * config.kv_heads * config.head_dim),
        attention(tokens * config.heads * config.head_dim),
        projected(tokens * config.hidden_size),
        gate(tokens * config.intermediate_size),
        up(tokens * config.intermediate_size) {}
  std::vector<float> hidden, normed, queries, keys, values, attention, projected, gate, up;
};

// rope: the angles of each token of the pass (of this layer's frequencies).
void attention_block(const Model& model, const LayerWeights& weights, int64_t layer, KvCache& cache,
                     int64_t tokens, int64_t start_position, std::span<const RopeAngles> rope, Activations& a,
                     ThreadPool& pool) {
  const ModelConfig& config = model.config();
  const int64_t head_dim = config.head_dim;
  const int64_t q_width = config.heads * head_dim;
  const int64_t kv_width = config.kv_heads * head_dim;
  rms_norm(a.hidden, weights.input_norm, config.rms_norm_eps, a.normed);
  const LinearWeight* projections[] = {&weights.q, &weights.k, &weights.v};
  const std::span<float> projected[] = {a.queries, a.keys, a.values};
  linear_forward_group(projections, a.normed, tokens, projected, pool);
  add_bias(a.queries, weights.q_bias);
  add_bias(a.keys, weights.k_bias);
  add_bias(a.values, weights.v_bias);
  if (config.qk_norm) {
    rms_norm(a.queries, weights.q_norm, config.rms_norm_eps, a.queries);
    rms_norm(a.keys, weights.k_norm, config.rms_norm_eps, a.keys);
  }
  for (int64_t token = 0; token < tokens; ++token) {
    const int64_t position = start_position + token;
    std::span<float> query(a.queries.data() + token * q_width, q_width);
    std::span<float> key(a.keys.data() + token * kv_width, kv_width);
    apply_rope(query, head_dim, rope[token]);
    apply_rope(key, head_dim, rope[token]);
    cache.store(layer, position, key, std::span<const float>(a.values.data() + token * kv_width, kv_width));
  }
  causal_attention(a.queries, tokens, start_position, layer, cache,
                   AttentionShape{config.heads, config.kv_heads, head_dim, config.attention_scale}, a.attention,
                   pool);
  linear_forward(weights.o, a.attention, tokens, a.projected, pool);
  add_bias(a.projected, weights.o_bias);
  if (config.sandwich_norms) rms_norm(a.projected, weights.post_attention_norm, config.rms_norm_eps, a.projected);
  for (size_t i = 0; i < a.hidden.size(); ++i) a.hidden[i] += a.projected[i];
}

void mlp_block(const Model& model, const LayerWeights& weights, int64_t tokens, Activations& a, ThreadPool& pool) {
  const ModelConfig& config = model.config();
  const std::vector<float>& input_norm = config.sandwich_norms ? weights.pre_feedforward_norm : weights.post_attention_norm;
  rms_norm(a.hidden, input_norm, config.rms_norm_eps, a.normed);
  const LinearWeight* projections[] = {&weights.gate, &weights.up};
  const std::span<float> projected[] = {a.gate, a.up};
  linear_forward_group(projections, a.normed, tokens, projected, pool);
  add_bias(a.gate, weights.gate_bias);
  add_bias(a.up, weights.up_bias);
  switch (config.activation) {
    case Activation::silu: silu_mul(a.gate, a.up, a.gate); break;
    case Activation::gelu_tanh: gelu_tanh_mul(a.gate, a.up, a.gate); break;
  }
  linear_forward(weights.down, a.gate, tokens, a.projected, pool);
  add_bias(a.projected, weights.down_bias);
  if (config.sandwich_norms) {
    rms_norm(a.projected, weights.post_feedforward_norm, config.rms_norm_eps, a.projected);
  }
  for (size_t i = 0; i < a.hidden.size(); ++i) a.hidden[i] += a.projected[i];
}

std::vector<float> run_pass(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                            int64_t start_position, int64_t first_output, bool check_each_layer, ThreadPool& pool) {
  const ModelConfig& config = model.config();
  const int64_t count = static_cast<int64_t>(tokens.size());
  const int64_t hidden = config.hidden_size;
  Activations a(config, count);
  for (int64_t token = 0; token < count; ++token) {
    model.embed(tokens[token], std::span<float>(a.hidden).subspan(token * hidden, hidden));
  }
  // The RoPE angles of every token, made once for all layers (local: the sliding layers' own base).
  const std::vector<double> global_frequencies =
      rope_inverse_frequencies(config.head_dim, config.rope_theta, config.rope_scaling);
  const std::vector<double> local_frequencies =
      rope_inverse_frequencies(config.head_dim, config.local_rope_theta, RopeScaling{});
  std::vector<RopeAngles> global_angles, local_angles;
  for (int64_t token = 0; token < count; ++token) {
    global_angles.push_back(rope_angles(start_position + token, global_frequencies));
    if (!config.sliding_layers.empty()) local_angles.push_back(rope_angles(start_position + token, local_frequencies));
  }
  for (int64_t layer = 0; layer < config.layers; ++layer) {
    const LayerWeights& weights = model.layers()[layer];
    const bool local = !config.sliding_layers.empty() && config.sliding_layers[layer];
    attention_block(model, weights, layer, cache, count, start_position, local ? local_angles : global_angles, a,
                    pool);
    mlp_block(model, weights, count, a, pool);
    if (check_each_layer) {
      if (const auto index = find_nan(a.hidden)) {
        fail("NaN in the hidden state after layer ", layer, " at position ",
             start_position + static_cast<int64_t>(*index) / hidden, " (hidden index ",
             static_cast<int64_t>(*index) % hidden, ")");
      }
    }
  }
  const int64_t output_tokens = count - first_output;
  std::span<const float> final_hidden = std::span<const float>(a.hidden).last(output_tokens * hidden);
  std::vector<float> normed(output_tokens * hidden);
  rms_norm(final_hidden, model.final_norm(), config.rms_norm_eps, normed);
  std::vector<float> logits(output_tokens * config.vocab_size);
  linear_forward(model.lm_head(), normed, output_tokens, logits, pool);
  return logits;
}

}  // namespace

KvCache make_kv_cache(const Model& model, int64_t context_length, DType dtype) {
  const ModelConfig& config = model.config();
  check(config.sliding_window == 0 || context_length <= config.sliding_window, "context length ", context_length,
        " exceeds the model's sliding attention window ", config.sliding_window,
        " (sliding-window attention is not implemented)");
  return KvCache(config.layers, config.kv_heads, config.head_dim, context_length, dtype);
}

std::vector<float> forward(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                           int64_t start_position, LogitsFor which, ThreadPool& pool) {
  const int64_t first = which == LogitsFor::all_positions ? 0 : static_cast<int64_t>(tokens.size()) - 1;
  return forward(model, cache, tokens, start_position, LogitsFrom{first}, pool);
}

std::vector<float> forward(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                           int64_t start_position, LogitsFrom which, ThreadPool& pool) {
  check(!tokens.empty(), "forward needs at least one token");
  check(which.first_token >= 0 && which.first_token < static_cast<int64_t>(tokens.size()), "logits from token ",
        which.first_token, " of a pass of ", tokens.size(), " tokens");
  check(start_position >= 0 && start_position + static_cast<int64_t>(tokens.size()) <= cache.context_length(),
        "positions ", start_position, "..", start_position + static_cast<int64_t>(tokens.size()) - 1,
        " exceed the context length ", cache.context_length());
  check(cache.row_width() == model.config().kv_heads * model.config().head_dim,
        "KV cache rows of ", cache.row_width(), " values do not fit this model");
  std::vector<float> logits = run_pass(model, cache, tokens, start_position, which.first_token, false, pool);
  if (const auto index = find_nan(logits)) {
    // Rare and fatal: pay a second pass to say where the NaN came from. It rewrites the same cache
    // positions with the same values.
    run_pass(model, cache, tokens, start_position, which.first_token, true, pool);
    fail("NaN in the logits at vocabulary entry ", *index % model.config().vocab_size,
         " though no layer output holds one (final norm or lm_head)");
  }
  return logits;
}

}  // namespace hlwq
