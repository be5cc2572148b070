#include "engine/model.h"

#include <cmath>
#include <string>

#include "convert/model_weights.h"
#include "core/error.h"
#include "quant/affine_quant.h"
#include "quant/int4_symmetric.h"

namespace hlwq {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Finds a logical tensor and checks its shape against what the config implies.
const LogicalTensor& expect(const ModelWeights& weights, const std::string& name, const std::vector<int64_t>& shape) {
  const LogicalTensor* tensor = weights.find(name);
  check(tensor != nullptr, "missing tensor ", name, " in ", weights.folder().path().string());
  check(tensor->shape == shape, "tensor ", name, " has shape ", shape_text(tensor->shape), ", expected ",
        shape_text(shape));
  return *tensor;
}

class Loader {
 public:
  Loader(const ModelWeights& weights, ThreadPool& pool) : weights_(weights), pool_(pool) {}

  LinearWeight matrix(const std::string& name, int64_t rows, int64_t columns) {
    const LogicalTensor& tensor = expect(weights_, name, {rows, columns});
    LinearWeight weight = load_linear_weight(weights_, tensor);
    weights_.release(tensor);
    return weight;
  }

  std::vector<float> vector(const std::string& name, int64_t size) {
    const LogicalTensor& tensor = expect(weights_, name, {size});
    std::vector<float> values = weights_.read_float(tensor, pool_);
    weights_.release(tensor);
    return values;
  }

  // Any tensor of this shape, as floats.
  std::vector<float> floats(const std::string& name, const std::vector<int64_t>& shape) {
    const LogicalTensor& tensor = expect(weights_, name, shape);
    std::vector<float> values = weights_.read_float(tensor, pool_);
    weights_.release(tensor);
    return values;
  }

  // A norm's weights as the factor applied: Gemma and Qwen3.5 store them less one ((1 + weight) in
  // float, as transformers computes it), unless the folder already holds the factor (norms_shifted).
  std::vector<float> norm(const std::string& name, int64_t size, const ModelConfig& config) {
    std::vector<float> values = vector(name, size);
    if (config.norm_adds_one && !norms_shifted) {
      for (float& value : values) value = 1.0f + value;
    }
    return values;
  }

  const ModelWeights& weights() const { return weights_; }

  // mlx-lm's own Qwen3.5 conversions store the zero-centered norms plus one already (its sanitize
  // step adds the one when it loads a Hugging Face checkpoint, recognised by conv1d's [C, 1, K] shape).
  bool norms_shifted = false;

 private:
  const ModelWeights& weights_;
  ThreadPool& pool_;
};

bool is_linear_attention(const ModelConfig& config, int64_t layer) {
  return !config.layer_kinds.empty() && config.layer_kinds[static_cast<size_t>(layer)] == LayerKind::linear_attention;
}

std::string layer_prefix(const ModelConfig& config, int64_t layer) {
  return config.weight_prefix + "layers." + std::to_string(layer) + ".";
}

// A delta-net layer's conv weights: [channels, 1, kernel] as Hugging Face stores them, or
// [channels, kernel, 1] as mlx-lm does; both hold channel c's taps at c * kernel .. (c + 1) * kernel - 1.
std::vector<int64_t> conv_weight_shape(const LogicalTensor* tensor, const LinearAttentionConfig& linear) {
  const std::vector<int64_t> mlx_shape{linear.conv_channels(), linear.conv_kernel, 1};
  if (tensor != nullptr && tensor->shape == mlx_shape) return mlx_shape;
  return {linear.conv_channels(), 1, linear.conv_kernel};
}

std::string conv_weight_name(const ModelConfig& config, int64_t layer) {
  return layer_prefix(config, layer) + "linear_attn.conv1d.weight";
}

void load_delta_net(Loader& loader, const ModelConfig& config, int64_t layer, LayerWeights& weights) {
  const LinearAttentionConfig& linear = config.linear_attention;
  const int64_t hidden = config.hidden_size;
  const std::string net = layer_prefix(config, layer) + "linear_attn.";
  weights.in_proj_qkv = loader.matrix(net + "in_proj_qkv.weight", linear.conv_channels(), hidden);
  weights.in_proj_z = loader.matrix(net + "in_proj_z.weight", linear.value_dim(), hidden);
  weights.in_proj_b = loader.matrix(net + "in_proj_b.weight", linear.value_heads, hidden);
  weights.in_proj_a = loader.matrix(net + "in_proj_a.weight", linear.value_heads, hidden);
  weights.o = loader.matrix(net + "out_proj.weight", hidden, linear.value_dim());
  const std::string conv = conv_weight_name(config, layer);
  weights.conv_weight = loader.floats(conv, conv_weight_shape(loader.weights().find(conv), linear));
  weights.a_log = loader.vector(net + "A_log", linear.value_heads);
  weights.dt_bias = loader.vector(net + "dt_bias", linear.value_heads);
  weights.delta_norm = loader.vector(net + "norm.weight", linear.value_head_dim);
}

void load_attention(Loader& loader, const ModelConfig& config, int64_t layer, LayerWeights& weights) {
  const std::string prefix = layer_prefix(config, layer);
  const int64_t hidden = config.hidden_size;
  const int64_t q_width = config.heads * config.head_dim;
  const int64_t kv_width = config.kv_heads * config.head_dim;
  // Qwen3.5's q_proj also yields each head's output gate.
  const int64_t q_rows = config.attention_output_gate ? 2 * q_width : q_width;
  weights.q = loader.matrix(prefix + "self_attn.q_proj.weight", q_rows, hidden);
  weights.k = loader.matrix(prefix + "self_attn.k_proj.weight", kv_width, hidden);
  weights.v = loader.matrix(prefix + "self_attn.v_proj.weight", kv_width, hidden);
  weights.o = loader.matrix(prefix + "self_attn.o_proj.weight", hidden, q_width);
  if (config.qkv_bias) {
    weights.q_bias = loader.vector(prefix + "self_attn.q_proj.bias", q_rows);
    weights.k_bias = loader.vector(prefix + "self_attn.k_proj.bias", kv_width);
    weights.v_bias = loader.vector(prefix + "self_attn.v_proj.bias", kv_width);
  }
  if (config.output_bias) weights.o_bias = loader.vector(prefix + "self_attn.o_proj.bias", hidden);
  if (config.qk_norm) {
    weights.q_norm = loader.norm(prefix + "self_attn.q_norm.weight", config.head_dim, config);
    weights.k_norm = loader.norm(prefix + "self_attn.k_norm.weight", config.head_dim, config);
  }
}

LayerWeights load_layer(Loader& loader, const ModelConfig& config, int64_t layer) {
  const std::string prefix = layer_prefix(config, layer);
  const int64_t hidden = config.hidden_size;
  const int64_t intermediate = config.intermediate_size;
  LayerWeights weights;
  weights.input_norm = loader.norm(prefix + "input_layernorm.weight", hidden, config);
  weights.post_attention_norm = loader.norm(prefix + "post_attention_layernorm.weight", hidden, config);
  if (config.sandwich_norms) {
    weights.pre_feedforward_norm = loader.norm(prefix + "pre_feedforward_layernorm.weight", hidden, config);
    weights.post_feedforward_norm = loader.norm(prefix + "post_feedforward_layernorm.weight", hidden, config);
  }
  if (is_linear_attention(config, layer)) {
    load_delta_net(loader, config, layer, weights);
  } else {
    load_attention(loader, config, layer, weights);
  }
  weights.gate = loader.matrix(prefix + "mlp.gate_proj.weight", intermediate, hidden);
  weights.up = loader.matrix(prefix + "mlp.up_proj.weight", intermediate, hidden);
  weights.down = loader.matrix(prefix + "mlp.down_proj.weight", hidden, intermediate);
  if (config.mlp_bias) {
    weights.gate_bias = loader.vector(prefix + "mlp.gate_proj.bias", intermediate);
    weights.up_bias = loader.vector(prefix + "mlp.up_proj.bias", intermediate);
    weights.down_bias = loader.vector(prefix + "mlp.down_proj.bias", hidden);
  }
  return weights;
}

uint64_t vector_bytes(const std::vector<float>& values) { return values.size() * sizeof(float); }

}  // namespace

Model Model::load(const std::filesystem::path& folder, ThreadPool& pool) {
  const ModelWeights weights = ModelWeights::open(folder);
  Model model;
  model.config_ = parse_model_config(weights.folder().config(), (folder / "config.json").string());
  const ModelConfig& config = model.config_;
  Loader loader(weights, pool);
  for (int64_t layer = 0; layer < config.layers; ++layer) {
    if (is_linear_attention(config, layer)) {
      const LogicalTensor* conv = weights.find(conv_weight_name(config, layer));
      const LinearAttentionConfig& linear = config.linear_attention;
      loader.norms_shifted =
          conv != nullptr && conv->shape == std::vector<int64_t>{linear.conv_channels(), linear.conv_kernel, 1};
      break;
    }
  }
  model.embedding_ = loader.matrix(config.weight_prefix + "embed_tokens.weight", config.vocab_size, config.hidden_size);
  for (int64_t layer = 0; layer < config.layers; ++layer) model.layers_.push_back(load_layer(loader, config, layer));
  model.final_norm_ = loader.norm(config.weight_prefix + "norm.weight", config.hidden_size, config);
  // A tied model may still store lm_head.weight (some exporters write both); use it when present.
  model.tied_ = config.tie_word_embeddings && weights.find("lm_head.weight") == nullptr;
  if (!model.tied_) model.lm_head_ = loader.matrix("lm_head.weight", config.vocab_size, config.hidden_size);
  return model;
}

Model Model::synthetic(const ModelConfig& config, const RandomLinearFormat& format, bool quantize_embeddings,
                       ThreadPool& pool) {
  Model model;
  model.config_ = config;
  uint64_t seed = 1;
  const RandomLinearFormat bf16{LinearFormat::dense, DType::BF16};
  const auto random = [&](const RandomLinearFormat& chosen, int64_t rows, int64_t columns) {
    return make_random_linear_weight(chosen, rows, columns, seed++ * 0x9e3779b97f4a7c15ull, pool);
  };
  const auto norm = [&](int64_t size) {
    std::vector<float> values(static_cast<size_t>(size));
    for (size_t i = 0; i < values.size(); ++i) values[i] = 1.0f + 0.01f * static_cast<float>((i * 37) % 11) - 0.05f;
    return values;
  };
  const int64_t q_width = config.heads * config.head_dim, kv_width = config.kv_heads * config.head_dim;
  model.embedding_ = random(quantize_embeddings ? format : bf16, config.vocab_size, config.hidden_size);
  for (int64_t index = 0; index < config.layers; ++index) {
    LayerWeights layer;
    layer.input_norm = norm(config.hidden_size);
    layer.post_attention_norm = norm(config.hidden_size);
    if (config.qk_norm && !is_linear_attention(config, index)) {
      layer.q_norm = norm(config.head_dim);
      layer.k_norm = norm(config.head_dim);
    }
    if (is_linear_attention(config, index)) {
      // The delta-net's small tensors stay exact as quantize keeps them: in_proj_a / in_proj_b in
      // BF16, the conv weights, A_log and dt_bias in float.
      const LinearAttentionConfig& linear = config.linear_attention;
      layer.in_proj_qkv = random(format, linear.conv_channels(), config.hidden_size);
      layer.in_proj_z = random(format, linear.value_dim(), config.hidden_size);
      layer.in_proj_b = random(bf16, linear.value_heads, config.hidden_size);
      layer.in_proj_a = random(bf16, linear.value_heads, config.hidden_size);
      layer.o = random(format, config.hidden_size, linear.value_dim());
      layer.conv_weight.resize(static_cast<size_t>(linear.conv_channels() * linear.conv_kernel));
      for (size_t i = 0; i < layer.conv_weight.size(); ++i) {
        layer.conv_weight[i] = 0.1f * static_cast<float>(static_cast<int64_t>((i * 29) % 17) - 8) / 8.0f;
      }
      for (int64_t head = 0; head < linear.value_heads; ++head) {
        layer.a_log.push_back(std::log(1.0f + static_cast<float>(head % 16)));  // decay rates as trained ones spread
        layer.dt_bias.push_back(-2.0f + 0.25f * static_cast<float>(head % 8));
      }
      layer.delta_norm = norm(linear.value_head_dim);
    } else {
      const int64_t q_rows = config.attention_output_gate ? 2 * q_width : q_width;
      layer.q = random(format, q_rows, config.hidden_size);
      layer.k = random(format, kv_width, config.hidden_size);
      layer.v = random(format, kv_width, config.hidden_size);
      layer.o = random(format, config.hidden_size, q_width);
    }
    layer.gate = random(format, config.intermediate_size, config.hidden_size);
    layer.up = random(format, config.intermediate_size, config.hidden_size);
    layer.down = random(format, config.hidden_size, config.intermediate_size);
    model.layers_.push_back(std::move(layer));
  }
  model.final_norm_ = norm(config.hidden_size);
  model.tied_ = config.tie_word_embeddings;
  if (!model.tied_) {
    model.lm_head_ = random(format.format == LinearFormat::ct_int4 ? bf16 : format, config.vocab_size,
                            config.hidden_size);
  }
  return model;
}

void Model::embed(int64_t token, std::span<float> out) const {
  check(token >= 0 && token < config_.vocab_size, "token id ", token, " is outside the vocabulary of ",
        config_.vocab_size);
  // MLX looks embeddings up with mx.dequantize (rounded to the scale dtype), unlike its matmul.
  dequantize_linear_row(embedding_, token, out, AffineArithmetic::dequantize);
  if (config_.embedding_scale != 1.0f) {
    for (float& value : out) value *= config_.embedding_scale;
  }
}

uint64_t Model::weight_bytes() const {
  uint64_t bytes = embedding_.stored_bytes() + lm_head_.stored_bytes() + vector_bytes(final_norm_);
  for (const LayerWeights& layer : layers_) {
    for (const LinearWeight* weight : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down,
                                       &layer.in_proj_qkv, &layer.in_proj_z, &layer.in_proj_b, &layer.in_proj_a}) {
      bytes += weight->stored_bytes();
    }
    for (const std::vector<float>* values : {&layer.input_norm, &layer.post_attention_norm, &layer.pre_feedforward_norm,
                                             &layer.post_feedforward_norm, &layer.q_norm,
                                             &layer.k_norm, &layer.q_bias, &layer.k_bias, &layer.v_bias,
                                             &layer.o_bias, &layer.gate_bias, &layer.up_bias, &layer.down_bias,
                                             &layer.conv_weight, &layer.a_log, &layer.dt_bias, &layer.delta_norm}) {
      bytes += vector_bytes(*values);
    }
  }
  return bytes;
}

}  // namespace hlwq
