#include "convert/config_shapes.h"

#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace hlwq {

namespace {

// A size config.json states: absent gives nullopt; present must be a positive integer that
// fits in 31 bits (no model dimension comes near, and larger ones overflow row arithmetic).
std::optional<int64_t> config_size(const nlohmann::json& config, const char* key, const std::string& where) {
  const auto found = config.find(key);
  if (found == config.end() || found->is_null()) return std::nullopt;
  check(found->is_number_integer() && found->get<int64_t>() > 0 && found->get<int64_t>() < (int64_t{1} << 31),
        "key \"", key, "\" must be a positive integer below 2^31, got ", found->dump(), ", ", where);
  return found->get<int64_t>();
}

bool ends_with(std::string_view name, std::string_view suffix) { return name.ends_with(suffix); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace

void check_shapes_against_config(const ModelFolder& folder) {
  const std::string where = (folder.path() / "config.json").string();
  const nlohmann::json& outer = folder.config();
  const nlohmann::json& config =
      outer.contains("text_config") && outer["text_config"].is_object() ? outer["text_config"] : outer;
  const std::optional<int64_t> hidden = config_size(config, "hidden_size", where);
  const std::optional<int64_t> intermediate = config_size(config, "intermediate_size", where);
  const std::optional<int64_t> vocab = config_size(config, "vocab_size", where);
  (void)config_size(config, "num_hidden_layers", where);
  (void)config_size(config, "num_attention_heads", where);
  (void)config_size(config, "num_key_value_heads", where);
  (void)config_size(config, "head_dim", where);

  // (suffix, dimension, the config size it must equal, the key's name)
  struct Rule {
    std::string_view suffix;
    size_t dimension;
    const std::optional<int64_t>* size;
    const char* key;
  };
  const Rule rules[] = {
      {"embed_tokens.weight", 0, &vocab, "vocab_size"},      {"embed_tokens.weight", 1, &hidden, "hidden_size"},
      {"lm_head.weight", 0, &vocab, "vocab_size"},           {"lm_head.weight", 1, &hidden, "hidden_size"},
      {"self_attn.q_proj.weight", 1, &hidden, "hidden_size"}, {"self_attn.k_proj.weight", 1, &hidden, "hidden_size"},
      {"self_attn.v_proj.weight", 1, &hidden, "hidden_size"}, {"self_attn.o_proj.weight", 0, &hidden, "hidden_size"},
      {".mlp.gate_proj.weight", 0, &intermediate, "intermediate_size"},
      {".mlp.gate_proj.weight", 1, &hidden, "hidden_size"},
      {".mlp.up_proj.weight", 0, &intermediate, "intermediate_size"},
      {".mlp.up_proj.weight", 1, &hidden, "hidden_size"},
      {".mlp.down_proj.weight", 0, &hidden, "hidden_size"},
      {".mlp.down_proj.weight", 1, &intermediate, "intermediate_size"},
      {"input_layernorm.weight", 0, &hidden, "hidden_size"},
      {"post_attention_layernorm.weight", 0, &hidden, "hidden_size"},
  };
  // Packed formats (HLWQ codes, MLX and CT INT4 words) store other shapes under the same names.
  if (outer.contains("quantization_config") || outer.contains("quantization")) return;
  for (const std::string& name : folder.tensor_names()) {
    const TensorInfo& info = folder.info(name);
    for (const Rule& rule : rules) {
      if (!ends_with(name, rule.suffix) || !rule.size->has_value()) continue;
      const bool matches = info.shape.size() > rule.dimension && info.shape[rule.dimension] == **rule.size;
      check(matches, "tensor ", name, " has shape ", shape_text(info.shape), " but config.json says ", rule.key, " ",
            **rule.size, ", ", folder.file(name).string());
    }
  }
}

}  // namespace hlwq
