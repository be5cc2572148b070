#include "engine/model_config.h"

#include "core/error.h"

namespace hlwq {

std::string supported_architectures() { return "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"; }

namespace {

const nlohmann::json& required(const nlohmann::json& object, const char* key, const std::string& where) {
  const auto found = object.find(key);
  check(found != object.end() && !found->is_null(), "missing key \"", key, "\" in ", where);
  return *found;
}

int64_t positive_integer(const nlohmann::json& object, const char* key, const std::string& where) {
  const nlohmann::json& value = required(object, key, where);
  check(value.is_number_integer() && value.get<int64_t>() > 0, "key \"", key, "\" must be a positive integer, ",
        where);
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
  if (scaling == nullptr) return;
  check(scaling->is_object(), "rope scaling must be an object, ", where);
  std::string type = "default";
  if (auto found = scaling->find("rope_type"); found != scaling->end() && found->is_string()) {
    type = found->get<std::string>();
  } else if (auto legacy = scaling->find("type"); legacy != scaling->end() && legacy->is_string()) {
    type = legacy->get<std::string>();
  }
  if (type == "default") return;
  RopeScaling& rope = model.rope_scaling;
  rope.factor = number_or(*scaling, "factor", 0.0, where);
  check(rope.factor > 0, "rope scaling \"", type, "\" needs a positive \"factor\", ", where);
  if (type == "linear") {
    rope.type = RopeScalingType::linear;
  } else if (type == "llama3") {
    rope.type = RopeScalingType::llama3;
    rope.low_freq_factor = number_or(*scaling, "low_freq_factor", 0.0, where);
    rope.high_freq_factor = number_or(*scaling, "high_freq_factor", 0.0, where);
    rope.original_max_position_embeddings = positive_integer(*scaling, "original_max_position_embeddings", where);
    check(rope.low_freq_factor > 0 && rope.high_freq_factor > rope.low_freq_factor,
          "llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, ", where);
  } else {
    fail("unsupported rope scaling type \"", type, "\" (supported: linear, llama3), ", where);
  }
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
  } else {
    fail("unsupported architecture ", name, " (supported: ", supported_architectures(), "), ", where);
  }
  model.hidden_size = positive_integer(config, "hidden_size", where);
  model.layers = positive_integer(config, "num_hidden_layers", where);
  model.heads = positive_integer(config, "num_attention_heads", where);
  model.kv_heads = config.contains("num_key_value_heads") && !config["num_key_value_heads"].is_null()
                       ? positive_integer(config, "num_key_value_heads", where)
                       : model.heads;
  check(model.heads % model.kv_heads == 0, "num_attention_heads ", model.heads,
        " is not a multiple of num_key_value_heads ", model.kv_heads, ", ", where);
  if (config.contains("head_dim") && !config["head_dim"].is_null()) {
    model.head_dim = positive_integer(config, "head_dim", where);
  } else {
    check(model.hidden_size % model.heads == 0, "hidden_size ", model.hidden_size,
          " is not a multiple of num_attention_heads ", model.heads, ", ", where);
    model.head_dim = model.hidden_size / model.heads;
  }
  check(model.head_dim % 2 == 0, "head_dim ", model.head_dim, " is odd (RoPE rotates pairs), ", where);
  model.intermediate_size = positive_integer(config, "intermediate_size", where);
  model.vocab_size = positive_integer(config, "vocab_size", where);
  model.max_position_embeddings = positive_integer(config, "max_position_embeddings", where);
  model.rms_norm_eps = number_or(config, "rms_norm_eps", model.rms_norm_eps, where);
  check(model.rms_norm_eps >= 0, "rms_norm_eps is negative, ", where);
  parse_rope(config, model, where);
  model.tie_word_embeddings = flag_or(config, "tie_word_embeddings", false, where);
  const bool attention_bias = flag_or(config, "attention_bias", false, where);
  switch (model.architecture) {
    case Architecture::llama:
      model.qkv_bias = model.output_bias = attention_bias;
      model.mlp_bias = flag_or(config, "mlp_bias", false, where);
      break;
    case Architecture::qwen2:
      model.qkv_bias = true;
      if (flag_or(config, "use_sliding_window", false, where) && config.contains("sliding_window") &&
          !config["sliding_window"].is_null()) {
        model.sliding_window = positive_integer(config, "sliding_window", where);
      }
      break;
    case Architecture::qwen3:
      model.qkv_bias = model.output_bias = attention_bias;
      model.qk_norm = true;
      break;
  }
  const std::string activation = config.value("hidden_act", std::string("silu"));
  check(activation == "silu", "unsupported hidden_act \"", activation, "\" (supported: silu), ", where);
  return model;
}

}  // namespace hlwq
