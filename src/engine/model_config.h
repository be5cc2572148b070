// The decoder hyperparameters the engine needs, read from a Hugging Face config.json for the
// supported classes: LlamaForCausalLM (Llama 2/3, SmolLM2, Mistral), Qwen2ForCausalLM, Qwen3ForCausalLM,
// Gemma3ForCausalLM (model_type gemma3_text).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/rotary_embedding.h"

namespace hlwq {

enum class Architecture { llama, qwen2, qwen3, gemma3 };

// The gate of the MLP: silu (SwiGLU: llama, qwen) or gelu with the tanh approximation (GeGLU: gemma3).
enum class Activation { silu, gelu_tanh };

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
  Activation activation = Activation::silu;
  // Gemma 3. Its RMSNorms scale by (1 + weight): parse leaves the weights as stored, Model::load
  // adds the 1. Each layer also normalizes the attention output (post_attention_layernorm), the
  // MLP input (pre_feedforward_layernorm) and the MLP output (post_feedforward_layernorm).
  bool norm_adds_one = false;
  bool sandwich_norms = false;
  // Token embeddings are multiplied by this (gemma3: sqrt(hidden_size), as a float32 as transformers
  // does for a float32 model; a bfloat16 model would round it to 25.25 for hidden 640).
  float embedding_scale = 1.0f;
  // Attention scores are q.k times this: head_dim^-0.5, or query_pre_attn_scalar^-0.5 for gemma3.
  double attention_scale = 0;
  // Gemma 3 alternates sliding-window ("local") and full ("global") attention layers; the local ones
  // rotate with local_rope_theta and no scaling, the global ones with rope_theta and rope_scaling.
  // Empty: every layer is global. The engine refuses contexts longer than sliding_window, where the
  // two kinds of layer attend alike.
  std::vector<bool> sliding_layers;
  double local_rope_theta = 10000.0;
};

// Throws hlwq::Error with one line naming `where` (the config.json path) on an unsupported
// architecture (listing the supported ones), a missing or malformed key, or inconsistent sizes.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& where);

// "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM"
std::string supported_architectures();

}  // namespace hlwq
