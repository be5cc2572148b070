// The decoder hyperparameters the engine needs, read from a Hugging Face config.json for the
// supported classes: LlamaForCausalLM (Llama 2/3, SmolLM2, Mistral), Qwen2ForCausalLM, Qwen3ForCausalLM,
// Gemma3ForCausalLM (model_type gemma3_text), and the dense Qwen3.5 (Qwen3_5ForCausalLM, model_type
// qwen3_5_text, and the published Qwen3_5ForConditionalGeneration, model_type qwen3_5, whose decoder
// hyperparameters sit under "text_config").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/rotary_embedding.h"

namespace hlwq {

enum class Architecture { llama, qwen2, qwen3, gemma3, qwen3_5 };

// The token mixer of a layer. Qwen3.5 interleaves gated delta-net layers ("linear_attention") with
// gated full-attention layers ("full_attention"), 3:1 in the published models.
enum class LayerKind { full_attention, linear_attention };

// The gated delta-net of Qwen3.5's linear-attention layers. in_proj_qkv yields q | k | v
// (key_dim, key_dim, value_dim values), which is also the channel order of the depthwise conv1d;
// each key head serves value_heads / key_heads consecutive value heads.
struct LinearAttentionConfig {
  int64_t key_heads = 0;       // linear_num_key_heads
  int64_t value_heads = 0;     // linear_num_value_heads, a multiple of key_heads
  int64_t key_head_dim = 0;    // linear_key_head_dim
  int64_t value_head_dim = 0;  // linear_value_head_dim
  int64_t conv_kernel = 0;     // linear_conv_kernel_dim (4): the conv state keeps conv_kernel - 1 inputs

  int64_t key_dim() const { return key_heads * key_head_dim; }
  int64_t value_dim() const { return value_heads * value_head_dim; }
  int64_t conv_channels() const { return 2 * key_dim() + value_dim(); }
};

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
  // How many values of each head RoPE rotates (rotate-half pairs i, i + rotary_dim / 2): head_dim,
  // or head_dim * partial_rotary_factor for Qwen3.5 (64 of 256); the rest pass through.
  int64_t rotary_dim = 0;
  // Qwen3.5. Every norm of the decoder (input, post-attention, final, q_norm, k_norm) is
  // zero-centered (norm_adds_one); the gated RMSNorm inside each delta-net (linear_attn.norm) is not
  // and scales by its weight as stored. Its eps is rms_norm_eps; q and k of the delta-net are
  // L2-normalized with eps 1e-6 (fixed, not a config key).
  // layer_kinds: one per layer (empty for the other architectures: every layer full attention).
  std::vector<LayerKind> layer_kinds;
  LinearAttentionConfig linear_attention;
  // q_proj yields 2 * head_dim values per head, the query then a gate; the attention output is
  // multiplied by sigmoid(gate) before o_proj.
  bool attention_output_gate = false;
  // Where the decoder's weights are: "model." (causal LM) or "model.language_model."
  // (Qwen3_5ForConditionalGeneration, whose folder also holds model.visual.* and mtp.*). lm_head.weight
  // is at the top level in both.
  std::string weight_prefix = "model.";
};

// Throws hlwq::Error with one line naming `where` (the config.json path) on an unsupported
// architecture (listing the supported ones), a missing or malformed key, or inconsistent sizes.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& where);

// "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, Qwen3_5ForCausalLM,
// Qwen3_5ForConditionalGeneration"
std::string supported_architectures();

}  // namespace hlwq
