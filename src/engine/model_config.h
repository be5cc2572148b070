// The decoder hyperparameters the engine needs, read from a Hugging Face config.json for the
// supported classes: LlamaForCausalLM (Llama 2/3, SmolLM2, Mistral), Qwen2ForCausalLM, Qwen3ForCausalLM.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace hlwq {

enum class Architecture { llama, qwen2, qwen3 };

enum class RopeScalingType { none, linear, llama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

struct ModelConfig {
  Architecture architecture = Architecture::llama;
  int64_t hidden_size = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;  // explicit "head_dim", else hidden_size / heads
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;     // q, k, v projections have biases (qwen2 always; llama/qwen3 with attention_bias)
  bool output_bias = false;  // o_proj has a bias (llama/qwen3 with attention_bias)
  bool mlp_bias = false;     // gate, up, down have biases (llama with mlp_bias)
  bool qk_norm = false;      // qwen3: RMSNorm over each head of q and k before RoPE
  // Mistral's (or Qwen2's with use_sliding_window) attention window; 0: none. The engine attends to
  // every position, which equals the windowed attention only up to this many positions.
  int64_t sliding_window = 0;
};

// Throws hlwq::Error with one line naming `where` (the config.json path) on an unsupported
// architecture (listing the supported ones), a missing or malformed key, or inconsistent sizes.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& where);

// "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"
std::string supported_architectures();

}  // namespace hlwq
