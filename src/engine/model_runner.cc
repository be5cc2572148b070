#include "engine/model_runner.h"

#include <cmath>
#include <map>
#include <optional>
#include <string>

#include "core/error.h"
#include "ops/rotary_embedding.h"

namespace hlwq {

namespace {

// First index of a NaN, if any.
std::optional<size_t> find_nan(std::span<const float> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) return i;
  }
  return std::nullopt;
}

struct UploadedLinear {
  std::unique_ptr<BackendLinear> weight;
  Buffer bias;  // empty when the model has none
};

struct UploadedLayer {
  Buffer input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm, q_norm, k_norm;
  UploadedLinear q, k, v, o, gate, up, down;
  bool local_rope = false;  // gemma3's sliding-window layers rotate with their own base
  // Qwen3.5: a gated delta-net layer (o is its out_proj), numbered among the delta-net layers; an
  // attention layer's KV cache layer is numbered among the attention layers.
  bool delta_net = false;
  int64_t state_index = 0;
  UploadedLinear in_proj_qkv, in_proj_z, in_proj_b, in_proj_a;
  Buffer conv_weight, a_log, dt_bias, delta_norm;
};

}  // namespace

struct ModelRunner::Uploaded {
  std::vector<UploadedLayer> layers;
  std::unique_ptr<BackendLinear> embedding, lm_head;  // lm_head empty when tied
  Buffer final_norm;
  std::unique_ptr<BackendRope> rope, local_rope;
  std::unique_ptr<BackendKvCache> cache;          // empty when no layer attends (never so far)
  std::unique_ptr<BackendDeltaNetState> delta_state;  // empty without delta-net layers
  std::unique_ptr<BackendPassInputs> pass_inputs;
  // Scratch for max_pass_tokens rows.
  Buffer hidden, normed, queries, keys, values, attention, projected, gate, up, logits;
  Buffer query_and_gate, attention_gate;                                  // gated attention
  Buffer mixed, convolved, delta_z, delta_a, delta_b, delta_out;          // delta-net
  // Hybrid models: the position each sequence's recurrent state has reached (-1: unknown after a
  // failed pass, so only a restart at 0 is allowed).
  std::vector<int64_t> state_positions;
  // Recorded single-pass graphs by row count, and how often each count ran unrecorded.
  std::map<int64_t, std::unique_ptr<BackendGraph>> graphs;
  std::map<int64_t, int> unrecorded_runs;
  std::vector<TokenPlace> places;

  const BackendLinear& output_head() const { return lm_head ? *lm_head : *embedding; }
};

namespace {

Buffer upload_vector(Backend& backend, const std::vector<float>& values) {
  return values.empty() ? Buffer() : backend.upload(values);
}

UploadedLinear upload_linear(Backend& backend, const LinearWeight& weight, const std::vector<float>& bias) {
  return UploadedLinear{backend.upload_linear(weight), upload_vector(backend, bias)};
}

// The pass's scratch, viewed for `rows` rows.
struct PassActivations {
  Floats hidden, normed, queries, keys, values, attention, projected, gate, up;
  Floats query_and_gate, attention_gate;
  Floats mixed, convolved, delta_z, delta_a, delta_b, delta_out;
};

// Each block reads its normalized input from a.normed and leaves its output in a.projected; the
// layer loop adds it to a.hidden together with the next block's input norm (add_and_rms_norm).

// Qwen3.5's gated delta-net in place of attention: projections, the causal conv, the gated delta
// rule over the sequence's recurrent state, the gated norm, out_proj.
void delta_net_block(Backend& backend, const ModelConfig& config, const UploadedLayer& layer,
                     BackendDeltaNetState& state, const PassActivations& a) {
  const int64_t rows = a.hidden.size / config.hidden_size;
  const BackendLinear* projections[] = {layer.in_proj_qkv.weight.get(), layer.in_proj_z.weight.get(),
                                        layer.in_proj_b.weight.get(), layer.in_proj_a.weight.get()};
  const Floats projected[] = {a.mixed, a.delta_z, a.delta_b, a.delta_a};
  backend.linear_group(projections, a.normed, rows, projected);
  backend.delta_net_conv(state, layer.state_index, a.mixed, layer.conv_weight.floats(), a.convolved);
  backend.delta_net_rule(state, layer.state_index, a.convolved, a.delta_a, a.delta_b, layer.a_log.floats(),
                         layer.dt_bias.floats(), a.delta_out);
  backend.gated_rms_norm(a.delta_out, a.delta_z, layer.delta_norm.floats(), config.rms_norm_eps, a.delta_out);
  backend.linear(*layer.o.weight, a.delta_out, rows, a.projected);
}

void attention_block(Backend& backend, const ModelConfig& config, const UploadedLayer& layer, BackendKvCache& cache, const BackendRope& rope, const PassActivations& a) {
  const int64_t head_dim = config.head_dim;
  const BackendLinear* projections[] = {layer.q.weight.get(), layer.k.weight.get(), layer.v.weight.get()};
  const bool gated = config.attention_output_gate;
  const Floats projected[] = {gated ? a.query_and_gate : a.queries, a.keys, a.values};
  const int64_t rows = a.hidden.size / config.hidden_size;
  backend.linear_group(projections, a.normed, rows, projected);
  backend.add_bias(projected[0], layer.q.bias.floats());
  backend.add_bias(a.keys, layer.k.bias.floats());
  backend.add_bias(a.values, layer.v.bias.floats());
  if (gated) backend.split_query_and_gate(a.query_and_gate, config.heads, head_dim, a.queries, a.attention_gate);
  if (config.qk_norm) {
    backend.rms_norm(a.queries, layer.q_norm.floats(), config.rms_norm_eps, a.queries);
    backend.rms_norm(a.keys, layer.k_norm.floats(), config.rms_norm_eps, a.keys);
  }
  backend.apply_rope(a.queries, config.heads, head_dim, rope);
  backend.apply_rope(a.keys, config.kv_heads, head_dim, rope);
  backend.store_kv(cache, layer.state_index, a.keys, a.values);
  backend.attention(a.queries, cache, layer.state_index,
                    AttentionShape{config.heads, config.kv_heads, head_dim, config.attention_scale}, a.attention);
  if (gated) backend.sigmoid_gate(a.attention, a.attention_gate);
  backend.linear(*layer.o.weight, a.attention, rows, a.projected);
  backend.add_bias(a.projected, layer.o.bias.floats());
  if (config.sandwich_norms) {
    backend.rms_norm(a.projected, layer.post_attention_norm.floats(), config.rms_norm_eps, a.projected);
  }
}

// The norm that opens the layer's feed-forward block.
const Buffer& mlp_input_norm(const ModelConfig& config, const UploadedLayer& layer) {
  return config.sandwich_norms ? layer.pre_feedforward_norm : layer.post_attention_norm;
}

void mlp_block(Backend& backend, const ModelConfig& config, const UploadedLayer& layer, const PassActivations& a) {
  const int64_t rows = a.hidden.size / config.hidden_size;
  const BackendLinear* projections[] = {layer.gate.weight.get(), layer.up.weight.get()};
  const Floats projected[] = {a.gate, a.up};
  backend.linear_group(projections, a.normed, rows, projected);
  backend.add_bias(a.gate, layer.gate.bias.floats());
  backend.add_bias(a.up, layer.up.bias.floats());
  switch (config.activation) {
    case Activation::silu: backend.silu_mul(a.gate, a.up); break;
    case Activation::gelu_tanh: backend.gelu_tanh_mul(a.gate, a.up); break;
  }
  backend.linear(*layer.down.weight, a.gate, rows, a.projected);
  backend.add_bias(a.projected, layer.down.bias.floats());
  if (config.sandwich_norms) {
    backend.rms_norm(a.projected, layer.post_feedforward_norm.floats(), config.rms_norm_eps, a.projected);
  }
}

}  // namespace

ModelRunner::ModelRunner(const Model& model, Backend& backend, const RunnerOptions& options)
    : model_(model), backend_(backend), options_(options), uploaded_(std::make_unique<Uploaded>()) {
  const ModelConfig& config = model.config();
  check(options_.context_length > 0, "context length must be positive, got ", options_.context_length);
  check(options_.sequences > 0, "a runner needs at least one sequence, got ", options_.sequences);
  check(config.sliding_window == 0 || options_.context_length <= config.sliding_window, "context length ",
        options_.context_length, " exceeds the model's sliding attention window ", config.sliding_window,
        " (sliding-window attention is not implemented)");
  if (options_.max_pass_tokens <= 0) options_.max_pass_tokens = options_.context_length;
  if (options_.max_output_rows <= 0) options_.max_output_rows = options_.max_pass_tokens;
  Uploaded& u = *uploaded_;
  int64_t attention_layers = 0, delta_net_layers = 0;
  for (size_t index = 0; index < model.layers().size(); ++index) {
    const LayerWeights& layer = model.layers()[index];
    UploadedLayer up;
    up.delta_net = !config.layer_kinds.empty() && config.layer_kinds[index] == LayerKind::linear_attention;
    up.state_index = up.delta_net ? delta_net_layers++ : attention_layers++;
    up.input_norm = upload_vector(backend, layer.input_norm);
    up.post_attention_norm = upload_vector(backend, layer.post_attention_norm);
    up.pre_feedforward_norm = upload_vector(backend, layer.pre_feedforward_norm);
    up.post_feedforward_norm = upload_vector(backend, layer.post_feedforward_norm);
    up.q_norm = upload_vector(backend, layer.q_norm);
    up.k_norm = upload_vector(backend, layer.k_norm);
    if (up.delta_net) {
      up.in_proj_qkv = upload_linear(backend, layer.in_proj_qkv, {});
      up.in_proj_z = upload_linear(backend, layer.in_proj_z, {});
      up.in_proj_b = upload_linear(backend, layer.in_proj_b, {});
      up.in_proj_a = upload_linear(backend, layer.in_proj_a, {});
      up.conv_weight = upload_vector(backend, layer.conv_weight);
      up.a_log = upload_vector(backend, layer.a_log);
      up.dt_bias = upload_vector(backend, layer.dt_bias);
      up.delta_norm = upload_vector(backend, layer.delta_norm);
    } else {
      up.q = upload_linear(backend, layer.q, layer.q_bias);
      up.k = upload_linear(backend, layer.k, layer.k_bias);
      up.v = upload_linear(backend, layer.v, layer.v_bias);
    }
    up.o = upload_linear(backend, layer.o, layer.o_bias);
    up.gate = upload_linear(backend, layer.gate, layer.gate_bias);
    up.up = upload_linear(backend, layer.up, layer.up_bias);
    up.down = upload_linear(backend, layer.down, layer.down_bias);
    up.local_rope = !config.sliding_layers.empty() && config.sliding_layers[index];
    u.layers.push_back(std::move(up));
  }
  u.embedding = backend.upload_linear(model.embedding());
  if (&model.lm_head() != &model.embedding()) u.lm_head = backend.upload_linear(model.lm_head());
  u.final_norm = upload_vector(backend, std::vector<float>(model.final_norm().begin(), model.final_norm().end()));
  const int64_t positions = options_.context_length;
  // Qwen3.5 rotates a quarter of each head (partial rotary): rotary_dim / 2 frequencies.
  const int64_t rotary_dim = config.rotary_dim > 0 ? config.rotary_dim : config.head_dim;
  u.rope = backend.make_rope(rope_inverse_frequencies(rotary_dim, config.rope_theta, config.rope_scaling), positions);
  if (!config.sliding_layers.empty()) {
    u.local_rope =
        backend.make_rope(rope_inverse_frequencies(config.head_dim, config.local_rope_theta, RopeScaling{}), positions);
  }
  if (attention_layers > 0) {
    u.cache = backend.make_kv_cache(KvCacheShape{attention_layers, config.kv_heads, config.head_dim,
                                                 options_.context_length, options_.sequences,
                                                 options_.kv_cache_dtype});
  }
  const LinearAttentionConfig& linear = config.linear_attention;
  const DeltaNetShape net{linear.key_heads, linear.value_heads, linear.key_head_dim, linear.value_head_dim,
                          linear.conv_kernel};
  if (delta_net_layers > 0) {
    u.delta_state = backend.make_delta_net_state(DeltaNetStateShape{delta_net_layers, options_.sequences, net});
    u.state_positions.assign(static_cast<size_t>(options_.sequences), 0);
  }
  const int64_t rows = options_.max_pass_tokens;
  u.pass_inputs = backend.make_pass_inputs(rows);
  u.hidden = backend.allocate(rows * config.hidden_size);
  u.normed = backend.allocate(rows * config.hidden_size);
  u.queries = backend.allocate(rows * config.heads * config.head_dim);
  u.keys = backend.allocate(rows * config.kv_heads * config.head_dim);
  u.values = backend.allocate(rows * config.kv_heads * config.head_dim);
  u.attention = backend.allocate(rows * config.heads * config.head_dim);
  u.projected = backend.allocate(rows * config.hidden_size);
  u.gate = backend.allocate(rows * config.intermediate_size);
  u.up = backend.allocate(rows * config.intermediate_size);
  u.logits = backend.allocate(options_.max_output_rows * config.vocab_size);
  if (config.attention_output_gate) {
    u.query_and_gate = backend.allocate(rows * 2 * config.heads * config.head_dim);
    u.attention_gate = backend.allocate(rows * config.heads * config.head_dim);
  }
  if (delta_net_layers > 0) {
    u.mixed = backend.allocate(rows * net.conv_channels());
    u.convolved = backend.allocate(rows * net.conv_channels());
    u.delta_z = backend.allocate(rows * net.value_dim());
    u.delta_a = backend.allocate(rows * net.value_heads);
    u.delta_b = backend.allocate(rows * net.value_heads);
    u.delta_out = backend.allocate(rows * net.value_dim());
  }
}

ModelRunner::~ModelRunner() = default;

BackendMemory ModelRunner::memory() const { return backend_.memory(); }

void ModelRunner::check_tokens(std::span<const int32_t> tokens) const {
  check(!tokens.empty(), "forward needs at least one token");
  check(static_cast<int64_t>(tokens.size()) <= options_.max_pass_tokens, "a pass of ", tokens.size(),
        " tokens exceeds the runner's largest pass of ", options_.max_pass_tokens);
  for (const int32_t token : tokens) {
    check(token >= 0 && token < model_.config().vocab_size, "token id ", token, " is outside the vocabulary of ",
          model_.config().vocab_size);
  }
}

void ModelRunner::run_pass(int64_t rows, int64_t output_rows, bool check_each_layer) {
  const ModelConfig& config = model_.config();
  Uploaded& u = *uploaded_;
  // Each scratch buffer holds max_pass_tokens rows; the pass uses its first `rows`.
  const auto rows_of = [&](const Buffer& buffer) {
    return buffer.floats().first(buffer.size() / options_.max_pass_tokens * rows);
  };
  const PassActivations a{rows_of(u.hidden),         rows_of(u.normed),    rows_of(u.queries),   rows_of(u.keys),
                          rows_of(u.values),         rows_of(u.attention), rows_of(u.projected), rows_of(u.gate),
                          rows_of(u.up),             rows_of(u.query_and_gate), rows_of(u.attention_gate),
                          rows_of(u.mixed),          rows_of(u.convolved), rows_of(u.delta_z),   rows_of(u.delta_a),
                          rows_of(u.delta_b),        rows_of(u.delta_out)};
  backend_.embed(*u.embedding, config.embedding_scale, a.hidden);
  backend_.prepare_rope(*u.rope);
  if (u.local_rope) backend_.prepare_rope(*u.local_rope);
  std::vector<float> hidden_on_host;
  const double eps = config.rms_norm_eps;
  if (config.layers > 0) backend_.rms_norm(a.hidden, u.layers[0].input_norm.floats(), eps, a.normed);
  for (int64_t index = 0; index < config.layers; ++index) {
    const UploadedLayer& layer = u.layers[index];
    if (layer.delta_net) {
      delta_net_block(backend_, config, layer, *u.delta_state, a);
    } else {
      attention_block(backend_, config, layer, *u.cache, layer.local_rope ? *u.local_rope : *u.rope, a);
    }
    backend_.add_and_rms_norm(a.hidden, a.projected, mlp_input_norm(config, layer).floats(), eps, a.normed);
    mlp_block(backend_, config, layer, a);
    // The last layer's sum goes to the final norm, which takes only the output rows.
    if (index + 1 < config.layers) {
      backend_.add_and_rms_norm(a.hidden, a.projected, u.layers[index + 1].input_norm.floats(), eps, a.normed);
    } else {
      backend_.add(a.hidden, a.projected);
    }
    if (check_each_layer) {
      hidden_on_host.resize(static_cast<size_t>(a.hidden.size));
      backend_.download(a.hidden, hidden_on_host);
      if (const auto found = find_nan(hidden_on_host)) {
        fail("NaN in the hidden state after layer ", index, " at position ",
             u.places[static_cast<size_t>(*found) / config.hidden_size].position, " (hidden index ",
             static_cast<int64_t>(*found) % config.hidden_size, ")");
      }
    }
  }
  const Floats final_hidden = a.hidden.rows(rows - output_rows, output_rows, config.hidden_size);
  const Floats normed = a.normed.first(output_rows * config.hidden_size);
  backend_.rms_norm(final_hidden, u.final_norm.floats(), config.rms_norm_eps, normed);
  backend_.linear(u.output_head(), normed, output_rows, u.logits.floats());
}

void ModelRunner::read_logits(int64_t output_rows, std::vector<float>& logits) {
  const int64_t vocab = model_.config().vocab_size;
  logits.resize(static_cast<size_t>(output_rows * vocab));
  backend_.download(uploaded_->logits.floats(), logits);
}

void ModelRunner::pass(std::span<const int32_t> tokens, std::span<const TokenPlace> places, int64_t output_rows,
                       std::vector<float>& logits) {
  const auto rows = static_cast<int64_t>(tokens.size());
  Uploaded& u = *uploaded_;
  // A recurrent state holds no positions: a pass continues each sequence where it stopped, or
  // restarts it at 0. Until the pass completes, its sequences' states count as unknown.
  std::vector<std::pair<int32_t, int64_t>> reached;
  if (!u.state_positions.empty()) {
    std::map<int32_t, int64_t> next;
    for (const TokenPlace& place : places) {
      auto [found, fresh] = next.try_emplace(place.sequence, u.state_positions[place.sequence]);
      int64_t& expected = found->second;
      check(place.position == 0 || place.position == expected, "sequence ", place.sequence,
            " of a hybrid model has its recurrent state at position ", expected < 0 ? std::string("unknown (a pass failed)") : std::to_string(expected),
            ": a pass must continue from there or restart at 0, not at ", place.position);
      expected = place.position + 1;
    }
    for (const auto& [sequence, position] : next) {
      reached.emplace_back(sequence, position);
      u.state_positions[sequence] = -1;
    }
  }
  if (u.places.data() != places.data()) u.places.assign(places.begin(), places.end());
  backend_.set_pass(*u.pass_inputs, tokens, places);
  // Single-token and small decode passes are recorded once (after a first plain run has grown
  // every workspace) and replayed: a CUDA decode step is then one graph launch instead of hundreds.
  const bool recordable = options_.record_decode && backend_.can_record() && rows <= 16 && output_rows == rows;
  if (recordable && u.graphs.contains(rows) && backend_.replay(*u.graphs[rows])) {
    // replayed
  } else if (recordable && u.unrecorded_runs[rows] >= 1) {
    backend_.begin_recording();
    run_pass(rows, output_rows, false);
    u.graphs[rows] = backend_.end_recording();
    check(backend_.replay(*u.graphs[rows]), "internal: a pass recorded just now cannot be replayed");
  } else {
    run_pass(rows, output_rows, false);
    ++u.unrecorded_runs[rows];
  }
  read_logits(output_rows, logits);
  if (const auto index = find_nan(logits); !index) {
    for (const auto& [sequence, position] : reached) u.state_positions[sequence] = position;
  } else {
    // Rare and fatal: pay a second pass to say where the NaN came from. It rewrites the same cache
    // positions with the same values (a recurrent state advances again: it stays unknown).
    run_pass(rows, output_rows, true);
    fail("NaN in the logits at vocabulary entry ", static_cast<int64_t>(*index) % model_.config().vocab_size,
         " though no layer output holds one (final norm or lm_head)");
  }
}

void ModelRunner::forward(int64_t sequence, std::span<const int32_t> tokens, int64_t start_position,
                          LogitsFrom which, std::vector<float>& logits) {
  check_tokens(tokens);
  const auto count = static_cast<int64_t>(tokens.size());
  check(sequence >= 0 && sequence < options_.sequences, "sequence ", sequence, " of a runner of ",
        options_.sequences, " sequences");
  check(which.first_token >= 0 && which.first_token < count, "logits from token ", which.first_token,
        " of a pass of ", count, " tokens");
  check(start_position >= 0 && start_position + count <= options_.context_length, "positions ", start_position, "..",
        start_position + count - 1, " exceed the context length ", options_.context_length);
  std::vector<TokenPlace>& places = uploaded_->places;
  places.resize(tokens.size());
  for (int64_t i = 0; i < count; ++i) {
    places[i] = TokenPlace{static_cast<int32_t>(sequence), static_cast<int32_t>(start_position + i)};
  }
  check(count - which.first_token <= options_.max_output_rows, "logits of ", count - which.first_token,
        " rows asked of a runner that returns at most ", options_.max_output_rows);
  pass(tokens, places, count - which.first_token, logits);
}

void ModelRunner::decode(std::span<const int32_t> tokens, std::span<const TokenPlace> places,
                         std::vector<float>& logits) {
  check_tokens(tokens);
  check(tokens.size() == places.size(), "decode of ", tokens.size(), " tokens at ", places.size(), " places");
  for (const TokenPlace& place : places) {
    check(place.sequence >= 0 && place.sequence < options_.sequences, "sequence ", place.sequence,
          " of a runner of ", options_.sequences, " sequences");
    check(place.position >= 0 && place.position < options_.context_length, "position ", place.position,
          " exceeds the context length ", options_.context_length);
  }
  check(static_cast<int64_t>(tokens.size()) <= options_.max_output_rows, "a decode of ", tokens.size(),
        " rows on a runner that returns at most ", options_.max_output_rows, " rows of logits");
  pass(tokens, places, static_cast<int64_t>(tokens.size()), logits);
}

std::vector<float> ModelRunner::forward(int64_t sequence, std::span<const int32_t> tokens, int64_t start_position,
                                        LogitsFor which) {
  const int64_t first = which == LogitsFor::all_positions ? 0 : static_cast<int64_t>(tokens.size()) - 1;
  std::vector<float> logits;
  forward(sequence, tokens, start_position, LogitsFrom{first}, logits);
  return logits;
}

}  // namespace hlwq
