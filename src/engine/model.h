// A decoder model loaded for execution: every linear weight in its storage format (LinearWeight),
// norms and biases as floats, the token embedding kept in its own format and dequantized one row
// per token. Checks that every tensor the config implies exists with the right shape.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "engine/model_config.h"
#include "ops/linear_weight.h"
#include "ops/linear_weight_builders.h"

namespace hlwq {

// Norm weights are held as the factor the normalized value is multiplied by: Gemma 3's stored
// weights plus one.
struct LayerWeights {
  // llama / qwen: post_attention_norm normalizes the MLP input. gemma3: it normalizes the attention
  // output, pre_feedforward_norm the MLP input and post_feedforward_norm the MLP output.
  std::vector<float> input_norm, post_attention_norm;
  std::vector<float> pre_feedforward_norm, post_feedforward_norm;  // gemma3 only
  std::vector<float> q_norm, k_norm;  // qwen3 only (head_dim each)
  LinearWeight q, k, v, o, gate, up, down;
  std::vector<float> q_bias, k_bias, v_bias, o_bias;  // empty when the model has none
  std::vector<float> gate_bias, up_bias, down_bias;
  // Qwen3.5's gated delta-net (linear_attention layers, which have no q/k/v): in_proj_qkv (q | k | v),
  // in_proj_z (the norm's gate), in_proj_b (beta), in_proj_a (decay), with out_proj in `o`; the conv
  // weights (conv channels x kernel), A_log and dt_bias (value heads), and the gated norm's weight
  // (value_head_dim, as stored: not zero-centered).
  LinearWeight in_proj_qkv, in_proj_z, in_proj_b, in_proj_a;
  std::vector<float> conv_weight, a_log, dt_bias, delta_norm;
};

class Model {
 public:
  // Reads config.json and the weights of a model folder (dense, HLWQ, MLX affine or CT INT4).
  // Throws hlwq::Error naming the tensor that is missing or misshapen.
  static Model load(const std::filesystem::path& folder, ThreadPool& pool);
  // A model of `config`'s shape with random weights made in memory (bench --synthetic): every layer
  // linear and the untied lm_head in `format` (the lm_head BF16 for CT INT4, which vLLM leaves
  // unquantized), the embedding BF16 unless quantize_embeddings, norms near 1.
  static Model synthetic(const ModelConfig& config, const RandomLinearFormat& format, bool quantize_embeddings,
                         ThreadPool& pool);

  const ModelConfig& config() const { return config_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  std::span<const float> final_norm() const { return final_norm_; }
  const LinearWeight& lm_head() const { return tied_ ? embedding_ : lm_head_; }
  const LinearWeight& embedding() const { return embedding_; }
  // Row `token` of the embedding as floats (times the config's embedding_scale); throws for a token outside the vocabulary.
  void embed(int64_t token, std::span<float> out) const;
  // Bytes the weights take in memory.
  uint64_t weight_bytes() const;

 private:
  ModelConfig config_;
  LinearWeight embedding_;
  std::vector<LayerWeights> layers_;
  std::vector<float> final_norm_;
  LinearWeight lm_head_;
  bool tied_ = false;
};

}  // namespace hlwq
