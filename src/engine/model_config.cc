#include "engine/model_config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace hlwq {

std::string supported_architectures() {
  return "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, Qwen3_5ForCausalLM, "
         "Qwen3_5ForConditionalGeneration";
}

namespace {

const nlohmann::json& required(const nlohmann::json& object, const char* key, const std::string& where) {
  const auto found = object.find(key);
  check(found != object.end() && !found->is_null(), "missing key \"", key, "\" in ", where);
  return *found;
}

// Sizes are below 2^31, so that products of two of them (a matrix's elements) cannot overflow.
int64_t positive_integer(const nlohmann::json& object, const char* key, const std::string& where) {
  const nlohmann::json& value = required(object, key, where);
  check(value.is_number_integer() && value.get<int64_t>() > 0 && value.get<int64_t>() <= INT32_MAX, "key \"", key,
        "\" must be a positive integer below 2^31, got ", value.dump(), ", ", where);
  return value.get<int64_t>();
}

double number_or(const nlohmann::json& object, const char* key, double fallback, const std::string& where) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return fallback;
  check(found->is_number(), "key \"", key, "\" must be a number, ", where);
  return found->get<double>();
}

bool flag_or(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return fallback;
  check(found->is_boolean(), "key \"", key, "\" must be true or false, ", where);
  return found->get<bool>();
}

// One rope scaling object ({"rope_type" or legacy "type": ..., "factor": ...}) into `rope`.
void parse_rope_scaling(const nlohmann::json& scaling, RopeScaling& rope, const std::string& where) {
  check(scaling.is_object(), "rope scaling must be an object, ", where);
  std::string type = "default";
  if (auto found = scaling.find("rope_type"); found != scaling.end() && found->is_string()) {
    type = found->get<std::string>();
  } else if (auto legacy = scaling.find("type"); legacy != scaling.end() && legacy->is_string()) {
    type = legacy->get<std::string>();
  }
  if (type == "default") return;
  rope.factor = number_or(scaling, "factor", 0.0, where);
  check(rope.factor > 0, "rope scaling \"", type, "\" needs a positive \"factor\", ", where);
  if (type == "linear") {
    rope.type = RopeScalingType::linear;
  } else if (type == "llama3") {
    rope.type = RopeScalingType::llama3;
    rope.low_freq_factor = number_or(scaling, "low_freq_factor", 0.0, where);
    rope.high_freq_factor = number_or(scaling, "high_freq_factor", 0.0, where);
    rope.original_max_position_embeddings = positive_integer(scaling, "original_max_position_embeddings", where);
    check(rope.low_freq_factor > 0 && rope.high_freq_factor > rope.low_freq_factor,
          "llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, ", where);
  } else {
    fail("unsupported rope scaling type \"", type, "\" (supported: linear, llama3), ", where);
  }
}

// transformers < 5 writes rope_theta and rope_scaling; transformers 5 writes rope_parameters
// holding both. Either is accepted.
void parse_rope(const nlohmann::json& config, ModelConfig& model, const std::string& where) {
  const nlohmann::json* scaling = nullptr;
  if (auto found = config.find("rope_scaling"); found != config.end() && !found->is_null()) scaling = &*found;
  if (auto found = config.find("rope_parameters"); found != config.end() && !found->is_null()) {
    check(found->is_object(), "key \"rope_parameters\" must be an object, ", where);
    model.rope_theta = number_or(*found, "rope_theta", model.rope_theta, where);
    if (scaling == nullptr) scaling = &*found;
  }
  model.rope_theta = number_or(config, "rope_theta", model.rope_theta, where);
  check(model.rope_theta > 0, "rope_theta must be positive, ", where);
  if (scaling != nullptr) parse_rope_scaling(*scaling, model.rope_scaling, where);
}

// Gemma 3's two ropes. transformers 5 nests them in rope_parameters under "full_attention" and
// "sliding_attention"; earlier configs give rope_theta (+ rope_scaling) and rope_local_base_freq.
// transformers' defaults: 1e6 global, 1e4 local.
void parse_gemma3_rope(const nlohmann::json& config, ModelConfig& model, const std::string& where) {
  model.rope_theta = 1000000.0;
  model.local_rope_theta = 10000.0;
  const auto parameters = config.find("rope_parameters");
  if (parameters != config.end() && parameters->is_object() && parameters->contains("full_attention")) {
    const nlohmann::json& global = (*parameters)["full_attention"];
    check(global.is_object(), "rope_parameters.full_attention must be an object, ", where);
    model.rope_theta = number_or(global, "rope_theta", model.rope_theta, where);
    parse_rope_scaling(global, model.rope_scaling, where);
    if (auto local = parameters->find("sliding_attention"); local != parameters->end() && !local->is_null()) {
      check(local->is_object(), "rope_parameters.sliding_attention must be an object, ", where);
      model.local_rope_theta = number_or(*local, "rope_theta", model.local_rope_theta, where);
      RopeScaling local_scaling;
      parse_rope_scaling(*local, local_scaling, where);
      check(local_scaling.type == RopeScalingType::none,
            "rope scaling on the sliding-window layers is not supported, ", where);
    }
  } else {
    parse_rope(config, model, where);
    model.local_rope_theta = number_or(config, "rope_local_base_freq", model.local_rope_theta, where);
  }
  check(model.rope_theta > 0 && model.local_rope_theta > 0, "rope theta must be positive, ", where);
}

// Which layers of a Gemma 3 use sliding-window attention: "layer_types", else every layer but each
// sliding_window_pattern-th (transformers' default pattern: 6).
std::vector<bool> gemma3_sliding_layers(const nlohmann::json& config, int64_t layers, const std::string& where) {
  std::vector<bool> sliding(static_cast<size_t>(layers));
  if (auto types = config.find("layer_types"); types != config.end() && !types->is_null()) {
    check(types->is_array() && static_cast<int64_t>(types->size()) == layers, "key \"layer_types\" must list ",
          layers, " layer types, ", where);
    for (size_t layer = 0; layer < sliding.size(); ++layer) {
      const nlohmann::json& type = (*types)[layer];
      check(type == "sliding_attention" || type == "full_attention", "layer type ", type.dump(),
            " is neither sliding_attention nor full_attention, ", where);
      sliding[layer] = type == "sliding_attention";
    }
    return sliding;
  }
  int64_t pattern = 6;
  if (config.contains("sliding_window_pattern") && !config["sliding_window_pattern"].is_null()) {
    pattern = positive_integer(config, "sliding_window_pattern", where);
  }
  for (size_t layer = 0; layer < sliding.size(); ++layer) sliding[layer] = (layer + 1) % pattern != 0;
  return sliding;
}

void parse_gemma3(const nlohmann::json& config, ModelConfig& model, const std::string& where) {
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping"}) {
    check(!config.contains(key) || config[key].is_null(), "key \"", key,
          "\" is set: logit softcapping (Gemma 2) is not supported, ", where);
  }
  check(!flag_or(config, "use_bidirectional_attention", false, where),
        "use_bidirectional_attention is not supported, ", where);
  parse_gemma3_rope(config, model, where);
  model.sliding_layers = gemma3_sliding_layers(config, model.layers, where);
  if (std::find(model.sliding_layers.begin(), model.sliding_layers.end(), true) != model.sliding_layers.end()) {
    model.sliding_window = positive_integer(config, "sliding_window", where);
  }
  model.qk_norm = true;
  model.norm_adds_one = true;
  model.sandwich_norms = true;
  model.qkv_bias = model.output_bias = flag_or(config, "attention_bias", false, where);
  model.embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(model.hidden_size)));
  const double query_scalar = number_or(config, "query_pre_attn_scalar", 0.0, where);
  check(query_scalar > 0, "key \"query_pre_attn_scalar\" must be a positive number, ", where);
  model.attention_scale = 1.0 / std::sqrt(query_scalar);
}


// Qwen3.5's layer kinds: "layer_types", else (as transformers derives it) every
// full_attention_interval-th layer full attention and the others linear.
std::vector<LayerKind> qwen3_5_layer_kinds(const nlohmann::json& config, int64_t layers, const std::string& where) {
  std::vector<LayerKind> kinds(static_cast<size_t>(layers));
  const auto types = config.find("layer_types");
  if (types == config.end() || types->is_null()) {
    check(config.contains("full_attention_interval") && !config["full_attention_interval"].is_null(),
          "missing key \"layer_types\" (Qwen3.5 lists linear_attention / full_attention per layer) in ", where);
    const int64_t interval = positive_integer(config, "full_attention_interval", where);
    for (size_t layer = 0; layer < kinds.size(); ++layer) {
      kinds[layer] = (layer + 1) % interval == 0 ? LayerKind::full_attention : LayerKind::linear_attention;
    }
    return kinds;
  }
  check(types->is_array() && static_cast<int64_t>(types->size()) == layers, "key \"layer_types\" must list ", layers,
        " layer types (num_hidden_layers), ", where);
  for (size_t layer = 0; layer < kinds.size(); ++layer) {
    const nlohmann::json& type = (*types)[layer];
    if (type == "linear_attention") {
      kinds[layer] = LayerKind::linear_attention;
    } else if (type == "full_attention") {
      kinds[layer] = LayerKind::full_attention;
    } else {
      fail("layer type ", type.dump(), " of layer ", layer, " is neither linear_attention nor full_attention, ", where);
    }
  }
  return kinds;
}

void parse_qwen3_5(const nlohmann::json& config, ModelConfig& model, const std::string& where) {
  model.layer_kinds = qwen3_5_layer_kinds(config, model.layers, where);
  LinearAttentionConfig& linear = model.linear_attention;
  linear.key_heads = positive_integer(config, "linear_num_key_heads", where);
  linear.value_heads = positive_integer(config, "linear_num_value_heads", where);
  linear.key_head_dim = positive_integer(config, "linear_key_head_dim", where);
  linear.value_head_dim = positive_integer(config, "linear_value_head_dim", where);
  linear.conv_kernel = positive_integer(config, "linear_conv_kernel_dim", where);
  check(linear.value_heads % linear.key_heads == 0, "linear_num_value_heads ", linear.value_heads,
        " is not a multiple of linear_num_key_heads ", linear.key_heads, ", ", where);
  // transformers 5 keeps partial_rotary_factor in rope_parameters; older configs at the top level;
  // transformers' default for Qwen3.5 is 0.25.
  double factor = number_or(config, "partial_rotary_factor", 0.25, where);
  if (auto parameters = config.find("rope_parameters"); parameters != config.end() && parameters->is_object()) {
    factor = number_or(*parameters, "partial_rotary_factor", factor, where);
  }
  check(factor > 0 && factor <= 1, "partial_rotary_factor ", factor, " is not in (0, 1], ", where);
  // transformers: int(head_dim * partial_rotary_factor).
  model.rotary_dim = static_cast<int64_t>(static_cast<double>(model.head_dim) * factor);
  check(model.rotary_dim >= 2 && model.rotary_dim % 2 == 0, "head_dim ", model.head_dim,
        " x partial_rotary_factor ", factor, " = ", model.rotary_dim, " rotated values is not a positive even number, ",
        where);
  check(flag_or(config, "attn_output_gate", true, where),
        "attn_output_gate false is not supported (Qwen3.5 gates every attention output), ", where);
  model.qkv_bias = model.output_bias = flag_or(config, "attention_bias", false, where);
  model.qk_norm = true;
  model.norm_adds_one = true;
  model.attention_output_gate = true;
}

}  // namespace

ModelConfig parse_model_config(const nlohmann::json& config, const std::string& where) {
  check(config.is_object(), "config is not a JSON object, ", where);
  const nlohmann::json& architectures = required(config, "architectures", where);
  check(architectures.is_array() && !architectures.empty() && architectures[0].is_string(),
        "key \"architectures\" must be a list of names, ", where);
  const std::string name = architectures[0].get<std::string>();
  ModelConfig model;
  if (name == "LlamaForCausalLM" || name == "MistralForCausalLM") {
    model.architecture = Architecture::llama;
    if (name == "MistralForCausalLM" && config.contains("sliding_window") && !config["sliding_window"].is_null()) {
      model.sliding_window = positive_integer(config, "sliding_window", where);
    }
  } else if (name == "Qwen2ForCausalLM") {
    model.architecture = Architecture::qwen2;
  } else if (name == "Qwen3ForCausalLM") {
    model.architecture = Architecture::qwen3;
  } else if (name == "Gemma3ForCausalLM") {
    model.architecture = Architecture::gemma3;
  } else if (name == "Qwen3_5ForCausalLM" || name == "Qwen3_5ForConditionalGeneration") {
    model.architecture = Architecture::qwen3_5;
  } else {
    fail("unsupported architecture ", name, " (supported: ", supported_architectures(), "), ", where);
  }
  // The published Qwen3.5 is a vision-language class: the decoder's keys sit under "text_config",
  // tie_word_embeddings at the top level (which transformers reads for the lm_head), the weights under
  // model.language_model.
  const bool multimodal = name == "Qwen3_5ForConditionalGeneration";
  if (multimodal) {
    const auto found = config.find("text_config");
    check(found != config.end() && found->is_object(), "key \"text_config\" must be an object, ", where);
    model.weight_prefix = "model.language_model.";
  }
  const nlohmann::json& text = multimodal ? config["text_config"] : config;
  const std::string text_where = multimodal ? "text_config of " + where : where;
  model.hidden_size = positive_integer(text, "hidden_size", text_where);
  model.layers = positive_integer(text, "num_hidden_layers", text_where);
  model.heads = positive_integer(text, "num_attention_heads", text_where);
  model.kv_heads = text.contains("num_key_value_heads") && !text["num_key_value_heads"].is_null()
                       ? positive_integer(text, "num_key_value_heads", text_where)
                       : model.heads;
  check(model.heads % model.kv_heads == 0, "num_attention_heads ", model.heads,
        " is not a multiple of num_key_value_heads ", model.kv_heads, ", ", text_where);
  if (text.contains("head_dim") && !text["head_dim"].is_null()) {
    model.head_dim = positive_integer(text, "head_dim", text_where);
  } else {
    check(model.hidden_size % model.heads == 0, "hidden_size ", model.hidden_size,
          " is not a multiple of num_attention_heads ", model.heads, ", ", text_where);
    model.head_dim = model.hidden_size / model.heads;
  }
  check(model.head_dim % 2 == 0, "head_dim ", model.head_dim, " is odd (RoPE rotates pairs), ", text_where);
  model.intermediate_size = positive_integer(text, "intermediate_size", text_where);
  model.vocab_size = positive_integer(text, "vocab_size", text_where);
  model.max_position_embeddings = positive_integer(text, "max_position_embeddings", text_where);
  model.rms_norm_eps = number_or(text, "rms_norm_eps", model.rms_norm_eps, text_where);
  check(model.rms_norm_eps >= 0, "rms_norm_eps is negative, ", text_where);
  if (model.architecture != Architecture::gemma3) parse_rope(text, model, text_where);
  model.tie_word_embeddings = flag_or(text, "tie_word_embeddings", false, text_where);
  const bool attention_bias = flag_or(text, "attention_bias", false, text_where);
  switch (model.architecture) {
    case Architecture::llama:
      model.qkv_bias = model.output_bias = attention_bias;
      model.mlp_bias = flag_or(text, "mlp_bias", false, text_where);
      break;
    case Architecture::qwen2:
      model.qkv_bias = true;
      if (flag_or(text, "use_sliding_window", false, text_where) && text.contains("sliding_window") &&
          !text["sliding_window"].is_null()) {
        model.sliding_window = positive_integer(text, "sliding_window", text_where);
      }
      break;
    case Architecture::qwen3:
      model.qkv_bias = model.output_bias = attention_bias;
      model.qk_norm = true;
      break;
    case Architecture::gemma3:
      parse_gemma3(text, model, text_where);
      break;
    case Architecture::qwen3_5:
      parse_qwen3_5(text, model, text_where);
      break;
  }
  // Gemma names the activation hidden_activation (its hidden_act is a legacy alias).
  const char* activation_key =
      model.architecture == Architecture::gemma3 && text.contains("hidden_activation") ? "hidden_activation"
                                                                                          : "hidden_act";
  const std::string default_activation = model.architecture == Architecture::gemma3 ? "gelu_pytorch_tanh" : "silu";
  const auto found = text.find(activation_key);
  const bool given = found != text.end() && !found->is_null();
  check(!given || found->is_string(), "key \"", activation_key, "\" must be a string, ", text_where);
  const std::string activation = given ? found->get<std::string>() : default_activation;
  if (activation == "silu") {
    model.activation = Activation::silu;
  } else if (activation == "gelu_pytorch_tanh" && model.architecture == Architecture::gemma3) {
    model.activation = Activation::gelu_tanh;
  } else {
    fail("unsupported ", activation_key, " \"", activation, "\" (supported: silu; gelu_pytorch_tanh for Gemma 3), ",
         text_where);
  }
  if (multimodal && config.contains("tie_word_embeddings") && !config["tie_word_embeddings"].is_null()) {
    model.tie_word_embeddings = flag_or(config, "tie_word_embeddings", false, where);
  }
  if (model.rotary_dim == 0) model.rotary_dim = model.head_dim;
  if (model.attention_scale == 0) model.attention_scale = 1.0 / std::sqrt(static_cast<double>(model.head_dim));
  return model;
}

}  // namespace hlwq
