// Builds a tiny llama-shaped dense model folder with random weights for convert/ and cli tests.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/file_writer.h"
#include "io/model_folder.h"
#include "test_util.h"

namespace hlwq {

struct TinyModelOptions {
  DType dtype = DType::BF16;
  int64_t hidden = 192;        // not a multiple of 128: exercises HLWQ padding and MLX/INT4 skipping
  int64_t intermediate = 256;
  int64_t vocab = 300;
  int layers = 2;
  uint32_t seed = 1;
  bool poison_with_nan = false;  // puts a NaN into one weight
};

inline std::vector<std::pair<std::string, std::vector<int64_t>>> tiny_model_tensors(const TinyModelOptions& o) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {{"model.embed_tokens.weight", {o.vocab, o.hidden}}};
  for (int layer = 0; layer < o.layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    tensors.push_back({prefix + "input_layernorm.weight", {o.hidden}});
    tensors.push_back({prefix + "self_attn.q_proj.weight", {o.hidden, o.hidden}});
    tensors.push_back({prefix + "self_attn.k_proj.weight", {o.hidden / 3, o.hidden}});
    tensors.push_back({prefix + "self_attn.v_proj.weight", {o.hidden / 3, o.hidden}});
    tensors.push_back({prefix + "self_attn.o_proj.weight", {o.hidden, o.hidden}});
    tensors.push_back({prefix + "post_attention_layernorm.weight", {o.hidden}});
    tensors.push_back({prefix + "mlp.gate_proj.weight", {o.intermediate, o.hidden}});
    tensors.push_back({prefix + "mlp.up_proj.weight", {o.intermediate, o.hidden}});
    tensors.push_back({prefix + "mlp.down_proj.weight", {o.hidden, o.intermediate}});
  }
  tensors.push_back({"model.norm.weight", {o.hidden}});
  tensors.push_back({"lm_head.weight", {o.vocab, o.hidden}});
  return tensors;
}

inline void write_tiny_model(const std::filesystem::path& folder, const TinyModelOptions& options = {}) {
  std::filesystem::create_directories(folder);
  const auto tensors = tiny_model_tensors(options);
  std::vector<TensorDeclaration> declarations;
  for (const auto& [name, shape] : tensors) declarations.push_back({name, options.dtype, shape});
  {
    SafetensorsWriter writer(folder / "model.safetensors", declarations, {{"format", "pt"}});
    uint32_t seed = options.seed;
    for (const auto& declaration : declarations) {
      uint64_t count = 1;
      for (int64_t dim : declaration.shape) count *= dim;
      std::vector<float> values = random_normal(count, seed++, 0.02f);
      if (declaration.shape.size() == 1) {
        for (float& value : values) value += 1.0f;  // norms near 1, like trained models
      }
      if (options.poison_with_nan && declaration.name.find("layers.1.mlp.up_proj") != std::string::npos)
        values[values.size() / 2] = std::numeric_limits<float>::quiet_NaN();
      std::vector<std::byte> bytes(count * dtype_size(options.dtype));
      convert_from_float(values, options.dtype, bytes);
      writer.write(declaration.name, bytes);
    }
    writer.close();
  }
  const nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
      {"hidden_size", options.hidden}, {"intermediate_size", options.intermediate},
      {"num_hidden_layers", options.layers}, {"num_attention_heads", 3}, {"num_key_value_heads", 1},
      {"vocab_size", options.vocab}, {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", false},
      {"torch_dtype", options.dtype == DType::F32 ? "float32" : "bfloat16"}};
  write_text_file(folder / "config.json", config.dump(2));
  write_text_file(folder / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
}

}  // namespace hlwq
