// GGUF -> Hugging Face folder: config.json with the architecture mapped, weights renamed to HF
// names (llama's rotary Q/K row permutation undone) and written as BF16/F32 safetensors, and the
// tokenizer converted to tokenizer.json.
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

// The supported GGUF architectures ("llama", "qwen2", "qwen3") and their HF classes.
std::string_view supported_gguf_architectures();

// config.json for the model described by GGUF metadata. `vocab_size` is the embedding's row count.
nlohmann::json hf_config_from_gguf(const nlohmann::json& metadata, int64_t vocab_size, bool tied_embeddings,
                                   DType dtype);

// HF name of a GGUF tensor ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight");
// nullopt for tensors HF does not store (rope_freqs.weight: recomputed from config).
std::optional<std::string> hf_tensor_name(std::string_view gguf_name);

// llama.cpp's converter interleaves the two rotary halves of each head's rows of Q and K
// (row h*d + 2a + b holds HF row h*d + b*d/2 + a). This puts the rows back in HF order.
void undo_rope_permutation(std::span<const float> gguf_rows, int64_t rows, int64_t columns, int64_t heads,
                           std::span<float> hf_rows);

}  // namespace hlwq
