// config.json parsing for the supported architectures (transformers 4 and 5 rope keys) and its errors.
#include "engine/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "engine/engine_fixture.h"

namespace hlwq {
namespace {

nlohmann::json fixture_config(const std::string& name) {
  return nlohmann::json::parse(std::ifstream(engine_fixture(name) / "config.json"));
}

std::string error_of(const nlohmann::json& config) {
  try {
    parse_model_config(config, "dir/config.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(ModelConfig, ReadsTransformers5Configs) {
  const ModelConfig llama = parse_model_config(fixture_config("llama"), "llama");
  EXPECT_EQ(llama.architecture, Architecture::llama);
  EXPECT_EQ(llama.hidden_size, 64);
  EXPECT_EQ(llama.layers, 2);
  EXPECT_EQ(llama.heads, 4);
  EXPECT_EQ(llama.kv_heads, 2);
  EXPECT_EQ(llama.head_dim, 16);
  EXPECT_EQ(llama.vocab_size, 160);
  EXPECT_EQ(llama.rope_scaling.type, RopeScalingType::llama3);
  EXPECT_DOUBLE_EQ(llama.rope_scaling.factor, 8.0);
  EXPECT_EQ(llama.rope_scaling.original_max_position_embeddings, 64);
  EXPECT_DOUBLE_EQ(llama.rope_theta, 10000.0);
  EXPECT_FALSE(llama.qkv_bias);
  const ModelConfig tied = parse_model_config(fixture_config("llama_tied"), "tied");
  EXPECT_TRUE(tied.tie_word_embeddings);
  EXPECT_EQ(tied.rope_scaling.type, RopeScalingType::linear);
  EXPECT_DOUBLE_EQ(tied.rope_theta, 5000.0);
  const ModelConfig qwen2 = parse_model_config(fixture_config("qwen2"), "qwen2");
  EXPECT_TRUE(qwen2.qkv_bias);
  EXPECT_FALSE(qwen2.output_bias);
  const ModelConfig qwen3 = parse_model_config(fixture_config("qwen3"), "qwen3");
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 32);  // explicit, not hidden / heads
  EXPECT_EQ(qwen3.heads, 2);
}

TEST(ModelConfig, ReadsGemma3) {
  const ModelConfig gemma = parse_model_config(fixture_config("gemma3"), "gemma3");
  EXPECT_EQ(gemma.architecture, Architecture::gemma3);
  EXPECT_EQ(gemma.activation, Activation::gelu_tanh);
  EXPECT_TRUE(gemma.qk_norm && gemma.norm_adds_one && gemma.sandwich_norms && gemma.tie_word_embeddings);
  EXPECT_FLOAT_EQ(gemma.embedding_scale, 8.0f);
  EXPECT_DOUBLE_EQ(gemma.attention_scale, 1.0 / std::sqrt(24.0));
  EXPECT_EQ(gemma.sliding_layers, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(gemma.sliding_window, 64);
  EXPECT_DOUBLE_EQ(gemma.rope_theta, 1000000.0);
  EXPECT_EQ(gemma.rope_scaling.type, RopeScalingType::linear);
  EXPECT_DOUBLE_EQ(gemma.local_rope_theta, 10000.0);
  // The other architectures keep head_dim^-0.5 and silu.
  const ModelConfig qwen3 = parse_model_config(fixture_config("qwen3"), "qwen3");
  EXPECT_DOUBLE_EQ(qwen3.attention_scale, 1.0 / std::sqrt(32.0));
  EXPECT_EQ(qwen3.activation, Activation::silu);
  EXPECT_FLOAT_EQ(qwen3.embedding_scale, 1.0f);
}

// transformers 4 configs (google/gemma-3-270m's): rope_theta, rope_local_base_freq, no layer_types
// but sliding_window_pattern.
TEST(ModelConfig, ReadsLegacyGemma3Keys) {
  nlohmann::json config = fixture_config("gemma3");
  config.erase("rope_parameters");
  config.erase("layer_types");
  config["rope_theta"] = 500000.0;
  config["rope_local_base_freq"] = 20000.0;
  config["sliding_window_pattern"] = 2;
  const ModelConfig gemma = parse_model_config(config, "gemma3");
  EXPECT_DOUBLE_EQ(gemma.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(gemma.local_rope_theta, 20000.0);
  EXPECT_EQ(gemma.rope_scaling.type, RopeScalingType::none);
  EXPECT_EQ(gemma.sliding_layers, (std::vector<bool>{true, false, true, false}));
  config.erase("sliding_window_pattern");
  EXPECT_EQ(parse_model_config(config, "gemma3").sliding_layers, (std::vector<bool>{true, true, true, true}));
}

TEST(ModelConfig, Gemma3Errors) {
  nlohmann::json softcapped = fixture_config("gemma3");
  softcapped["final_logit_softcapping"] = 30.0;
  EXPECT_NE(error_of(softcapped).find("softcapping"), std::string::npos);
  nlohmann::json attention_capped = fixture_config("gemma3");
  attention_capped["attn_logit_softcapping"] = 50.0;
  EXPECT_NE(error_of(attention_capped).find("softcapping"), std::string::npos);
  nlohmann::json types = fixture_config("gemma3");
  types["layer_types"] = {"sliding_attention"};
  EXPECT_NE(error_of(types).find("layer_types"), std::string::npos);
  nlohmann::json activation = fixture_config("gemma3");
  activation["hidden_activation"] = "relu";
  EXPECT_NE(error_of(activation).find("unsupported hidden_activation"), std::string::npos);
  nlohmann::json scalar = fixture_config("gemma3");
  scalar.erase("query_pre_attn_scalar");
  EXPECT_NE(error_of(scalar).find("query_pre_attn_scalar"), std::string::npos);
  nlohmann::json gelu_llama = fixture_config("llama");
  gelu_llama["hidden_act"] = "gelu_pytorch_tanh";
  EXPECT_NE(error_of(gelu_llama).find("unsupported hidden_act"), std::string::npos);
}

TEST(ModelConfig, ReadsLegacyRopeKeys) {
  nlohmann::json config = fixture_config("llama");
  config.erase("rope_parameters");
  config["rope_theta"] = 500000.0;
  config["rope_scaling"] = {{"type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  config.erase("head_dim");
  config["attention_bias"] = true;
  const ModelConfig parsed = parse_model_config(config, "x");
  EXPECT_DOUBLE_EQ(parsed.rope_theta, 500000.0);
  EXPECT_EQ(parsed.rope_scaling.type, RopeScalingType::llama3);
  EXPECT_DOUBLE_EQ(parsed.rope_scaling.factor, 32.0);
  EXPECT_EQ(parsed.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(parsed.head_dim, 16);
  EXPECT_TRUE(parsed.qkv_bias && parsed.output_bias);
  config["architectures"] = {"MistralForCausalLM"};
  config.erase("rope_scaling");
  config["sliding_window"] = 4096;
  EXPECT_EQ(parse_model_config(config, "x").rope_scaling.type, RopeScalingType::none);
  EXPECT_EQ(parse_model_config(config, "x").sliding_window, 4096);
  nlohmann::json qwen2 = fixture_config("qwen2");
  qwen2["sliding_window"] = 4096;
  EXPECT_EQ(parse_model_config(qwen2, "x").sliding_window, 0);  // use_sliding_window is false
  qwen2["use_sliding_window"] = true;
  EXPECT_EQ(parse_model_config(qwen2, "x").sliding_window, 4096);
}

nlohmann::json qwen35_config(const std::string& name) {
  return nlohmann::json::parse(
      std::ifstream(std::filesystem::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "qwen35" / name / "config.json"));
}

void expect_tiny_qwen35(const ModelConfig& config) {
  EXPECT_EQ(config.architecture, Architecture::qwen3_5);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.layers, 4);
  EXPECT_EQ(config.heads, 4);
  EXPECT_EQ(config.kv_heads, 2);
  EXPECT_EQ(config.head_dim, 32);
  EXPECT_EQ(config.rotary_dim, 8);  // 32 x partial_rotary_factor 0.25
  EXPECT_EQ(config.vocab_size, 160);
  EXPECT_DOUBLE_EQ(config.rope_theta, 10000.0);
  EXPECT_EQ(config.rope_scaling.type, RopeScalingType::none);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-6);
  const std::vector<LayerKind> kinds = {LayerKind::linear_attention, LayerKind::linear_attention,
                                        LayerKind::linear_attention, LayerKind::full_attention};
  EXPECT_EQ(config.layer_kinds, kinds);
  EXPECT_EQ(config.linear_attention.key_heads, 2);
  EXPECT_EQ(config.linear_attention.value_heads, 4);
  EXPECT_EQ(config.linear_attention.key_head_dim, 16);
  EXPECT_EQ(config.linear_attention.value_head_dim, 24);
  EXPECT_EQ(config.linear_attention.conv_kernel, 4);
  EXPECT_EQ(config.linear_attention.conv_channels(), 2 * 2 * 16 + 4 * 24);
  EXPECT_TRUE(config.attention_output_gate && config.qk_norm && config.norm_adds_one);
  EXPECT_FALSE(config.qkv_bias || config.output_bias || config.sandwich_norms);
  EXPECT_EQ(config.activation, Activation::silu);
  EXPECT_DOUBLE_EQ(config.attention_scale, 1.0 / std::sqrt(32.0));
}

TEST(ModelConfig, ReadsQwen35Text) {
  const ModelConfig text = parse_model_config(qwen35_config("text"), "text");
  expect_tiny_qwen35(text);
  EXPECT_FALSE(text.tie_word_embeddings);
  EXPECT_EQ(text.weight_prefix, "model.");
  const ModelConfig tied = parse_model_config(qwen35_config("text_tied"), "tied");
  expect_tiny_qwen35(tied);
  EXPECT_TRUE(tied.tie_word_embeddings);
  // The other architectures rotate whole heads and have no layer kinds.
  const ModelConfig qwen3 = parse_model_config(fixture_config("qwen3"), "qwen3");
  EXPECT_EQ(qwen3.rotary_dim, qwen3.head_dim);
  EXPECT_TRUE(qwen3.layer_kinds.empty());
  EXPECT_FALSE(qwen3.attention_output_gate);
}

TEST(ModelConfig, ReadsQwen35MultimodalLayout) {
  nlohmann::json config = qwen35_config("multimodal");
  const ModelConfig multimodal = parse_model_config(config, "mm");
  expect_tiny_qwen35(multimodal);
  EXPECT_EQ(multimodal.weight_prefix, "model.language_model.");
  EXPECT_FALSE(multimodal.tie_word_embeddings);
  // The top-level tie_word_embeddings is the one transformers reads for this class.
  config["tie_word_embeddings"] = true;
  EXPECT_TRUE(parse_model_config(config, "mm").tie_word_embeddings);
  // Older configs: partial_rotary_factor beside rope_theta, not in rope_parameters.
  config["text_config"]["rope_parameters"].erase("partial_rotary_factor");
  config["text_config"]["partial_rotary_factor"] = 0.5;
  EXPECT_EQ(parse_model_config(config, "mm").rotary_dim, 16);
  // Without layer_types, transformers' full_attention_interval rule.
  config["text_config"].erase("layer_types");
  config["text_config"]["full_attention_interval"] = 2;
  const std::vector<LayerKind> alternating = {LayerKind::linear_attention, LayerKind::full_attention,
                                              LayerKind::linear_attention, LayerKind::full_attention};
  EXPECT_EQ(parse_model_config(config, "mm").layer_kinds, alternating);
}

TEST(ModelConfig, Qwen35Errors) {
  const auto error_with = [](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json config = qwen35_config("multimodal");
    change(config);
    const std::string message = error_of(config);
    EXPECT_NE(message.find("text_config of dir/config.json"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  };
  EXPECT_NE(error_with([](nlohmann::json& c) { c["text_config"].erase("layer_types"); }).find("missing key \"layer_types\""),
            std::string::npos);
  EXPECT_NE(error_with([](nlohmann::json& c) { c["text_config"]["layer_types"].erase(0); }).find("must list 4"),
            std::string::npos);
  EXPECT_NE(error_with([](nlohmann::json& c) { c["text_config"]["layer_types"][2] = "sliding_attention"; })
                .find("\"sliding_attention\" of layer 2"),
            std::string::npos);
  EXPECT_NE(error_with([](nlohmann::json& c) { c["text_config"]["linear_num_value_heads"] = 3; })
                .find("linear_num_value_heads 3 is not a multiple of linear_num_key_heads 2"),
            std::string::npos);
  EXPECT_NE(error_with([](nlohmann::json& c) { c["text_config"]["num_key_value_heads"] = 3; })
                .find("num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
            std::string::npos);
  for (const char* key : {"linear_num_key_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim"}) {
    EXPECT_NE(error_with([&](nlohmann::json& c) { c["text_config"].erase(key); }).find(key), std::string::npos);
  }
  EXPECT_NE(error_with([](nlohmann::json& c) { c["text_config"]["rope_parameters"]["partial_rotary_factor"] = 0.01; })
                .find("partial_rotary_factor"),
            std::string::npos);
  nlohmann::json no_text = qwen35_config("multimodal");
  no_text.erase("text_config");
  EXPECT_EQ(error_of(no_text), "key \"text_config\" must be an object, dir/config.json");
}

TEST(ModelConfig, ErrorsAreOneLineAndNameTheFile) {
  nlohmann::json config = fixture_config("qwen2");
  config["architectures"] = {"GPT2LMHeadModel"};
  std::string message = error_of(config);
  EXPECT_NE(message.find("GPT2LMHeadModel"), std::string::npos);
  EXPECT_NE(message.find("Qwen3ForCausalLM"), std::string::npos);
  EXPECT_NE(message.find("Gemma3ForCausalLM"), std::string::npos);
  EXPECT_NE(message.find("dir/config.json"), std::string::npos);
  for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                          "vocab_size", "max_position_embeddings", "architectures"}) {
    nlohmann::json missing = fixture_config("qwen2");
    missing.erase(key);
    message = error_of(missing);
    EXPECT_NE(message.find(key), std::string::npos) << message;
    EXPECT_NE(message.find("dir/config.json"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
  nlohmann::json bad = fixture_config("llama");
  bad["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(bad), "");
  bad = fixture_config("llama");
  bad["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_NE(error_of(bad).find("yarn"), std::string::npos);
  bad = fixture_config("llama");
  bad["hidden_size"] = "64";
  EXPECT_NE(error_of(bad).find("hidden_size"), std::string::npos);
  bad = fixture_config("llama");
  bad["hidden_act"] = "gelu";
  EXPECT_NE(error_of(bad).find("gelu"), std::string::npos);
  EXPECT_NE(error_of(nlohmann::json::array()), "");
}

}  // namespace
}  // namespace hlwq
