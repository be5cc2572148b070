// GGUF -> Hugging Face folder: config.json with the architecture mapped (bias flags from the tensors
// present, llama3 rope scaling from rope_freqs.weight), weights renamed to HF names (llama's rotary
// Q/K row permutation undone; Gemma 3's norm weights, which llama.cpp stores plus one, put back to
// HF's convention) and written as BF16/F16/F32 safetensors, and the tokenizer converted to
// tokenizer.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/dtype.h"

namespace hlwq {

struct ImportOptions {
  DType dtype = DType::BF16;  // BF16, F16 or F32 for every tensor written
  bool progress = false;
  int threads = 0;
};

struct ImportSummary {
  std::string architecture;
  size_t tensors = 0;
  uint64_t bytes_out = 0;
  double seconds = 0;
};

ImportSummary import_gguf(const std::filesystem::path& gguf_path, const std::filesystem::path& output_folder,
                          const ImportOptions& options);

// The supported GGUF architectures ("llama", "qwen2", "qwen3", "gemma3") and their HF classes.
std::string_view supported_gguf_architectures();

// config.json for the model described by GGUF metadata. `vocab_size` is the embedding's row count.
nlohmann::json hf_config_from_gguf(const nlohmann::json& metadata, int64_t vocab_size, bool tied_embeddings,
                                   DType dtype);

// Each HF class holds biases on a fixed set of projections: llama / qwen3 on q, k, v and o when
// attention_bias, llama on gate, up and down when mlp_bias, qwen2 always on q, k and v. Sets those
// flags in `config` (from hf_config_from_gguf) from the bias tensors among `gguf_tensor_names`, and
// throws hlwq::Error naming `source_name` when a layer's biases would not all land in the HF model.
void set_bias_flags(nlohmann::json& config, std::span<const std::string> gguf_tensor_names,
                    std::string_view source_name);

// HF name of a GGUF tensor ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight");
// nullopt for tensors HF does not store (rope_freqs.weight: recomputed from config). The GGUF
// architecture decides the norms: ffn_norm is llama's post_attention_layernorm but gemma3's
// pre_feedforward_layernorm (gemma3's post_attention_norm and post_ffw_norm have no llama match).
std::optional<std::string> hf_tensor_name(std::string_view gguf_name, std::string_view gguf_architecture = "llama");

// llama.cpp's converter interleaves the two rotary halves of each head's rows of Q and K
// (row h*d + 2a + b holds HF row h*d + b*d/2 + a). This puts the rows back in HF order.
void undo_rope_permutation(std::span<const float> gguf_rows, int64_t rows, int64_t columns, int64_t heads,
                           std::span<float> hf_rows);

// llama.cpp writes Llama 3's rope scaling only as rope_freqs.weight: one divisor per rotary
// frequency (1 for short wavelengths, `factor` for long ones, a smooth blend in between). Returns
// the HF rope_scaling {"rope_type": "llama3", ...} that gives back these divisors, or nullopt when
// all are 1. Throws hlwq::Error when no llama3 scaling reproduces them (to 1e-4 relative).
std::optional<nlohmann::json> llama3_rope_scaling(std::span<const float> divisors, double rope_theta);

}  // namespace hlwq
