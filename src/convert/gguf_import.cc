#include "convert/gguf_import.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <numbers>
#include <regex>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/file_writer.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/staged_directory.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "io/model_folder.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct ArchitectureEntry {
  std::string_view gguf_name;
  std::string_view hf_class;
  std::string_view model_type;
  bool rope_permuted;  // llama.cpp permutes Q/K rows only for llama-family checkpoints
};

constexpr std::array<ArchitectureEntry, 4> kArchitectures = {{
    {"llama", "LlamaForCausalLM", "llama", true},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", false},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", false},
    {"gemma3", "Gemma3ForCausalLM", "gemma3_text", false},
}};

const ArchitectureEntry& architecture_entry(const json& metadata, const std::string& file) {
  auto found = metadata.find("general.architecture");
  check(found != metadata.end() && found->is_string(), "missing general.architecture, ", file);
  const std::string name = found->get<std::string>();
  for (const ArchitectureEntry& entry : kArchitectures) {
    if (entry.gguf_name == name) return entry;
  }
  fail("unsupported architecture '", name, "' (supported: ", supported_gguf_architectures(), "), ", file);
}

// A required numeric metadata value "<arch>.<key>".
double required_number(const json& metadata, const std::string& arch, const std::string& key) {
  auto found = metadata.find(arch + "." + key);
  check(found != metadata.end() && found->is_number(), "missing GGUF metadata ", arch, ".", key);
  return found->get<double>();
}

std::optional<double> optional_number(const json& metadata, const std::string& key) {
  auto found = metadata.find(key);
  if (found == metadata.end() || !found->is_number()) return std::nullopt;
  return found->get<double>();
}

std::string_view dtype_torch_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    default: return "bfloat16";
  }
}

// llama.cpp's default for the context Llama 3 was trained with. The llama3 divisors depend on it only
// through original / low and original / high, so fixing it loses nothing when fitting low and high.
constexpr double kLlama3OriginalContext = 8192;

// The divisor llama.cpp (and HF's llama3 rope) apply to the frequency of this wavelength.
double llama3_divisor(double wavelength, double factor, double low, double high) {
  if (wavelength < kLlama3OriginalContext / high) return 1.0;
  if (wavelength > kLlama3OriginalContext / low) return factor;
  const double smooth = (kLlama3OriginalContext / wavelength - low) / (high - low);
  return 1.0 / ((1.0 - smooth) / factor + smooth);
}

// Relative 1e-4: the stored divisors went through float32 (frequencies and the tensor itself).
bool llama3_reproduces(std::span<const float> divisors, std::span<const double> wavelengths, double factor,
                       double low, double high) {
  for (size_t i = 0; i < divisors.size(); ++i) {
    const double want = divisors[i];
    if (!(std::abs(llama3_divisor(wavelengths[i], factor, low, high) - want) <= 1e-4 * want)) return false;
  }
  return true;
}

// What llama.cpp fixes for every gemma3 GGUF rather than storing (its gemma3 hyperparameter
// loading): every 6th layer global, the others sliding-window with rope base 1e4 unscaled, and the
// attention scale 1 / sqrt(key_length), except 1 / sqrt(hidden / heads) for the 62-layer 27B.
void add_gemma3_config(const json& metadata, json& config) {
  for (const char* key : {"gemma3.final_logit_softcapping", "gemma3.attn_logit_softcapping"}) {
    const auto value = optional_number(metadata, key);
    check(!value || *value == 0, "GGUF metadata ", key, " is set: logit softcapping is not supported");
  }
  config.erase("hidden_act");
  config["hidden_activation"] = "gelu_pytorch_tanh";
  const int64_t layers = config["num_hidden_layers"];
  const int64_t hidden = config["hidden_size"];
  const int64_t heads = config["num_attention_heads"];
  config["query_pre_attn_scalar"] = layers == 62 ? hidden / heads : config["head_dim"].get<int64_t>();
  const auto window = optional_number(metadata, "gemma3.attention.sliding_window");
  check(window && *window > 0, "missing GGUF metadata gemma3.attention.sliding_window");
  config["sliding_window"] = static_cast<int64_t>(*window);
  json layer_types = json::array();
  for (int64_t layer = 0; layer < layers; ++layer) {
    layer_types.push_back((layer + 1) % 6 != 0 ? "sliding_attention" : "full_attention");
  }
  config["layer_types"] = layer_types;
  config["rope_local_base_freq"] = optional_number(metadata, "gemma3.rope.freq_base_swa").value_or(10000.0);
  config["attention_bias"] = false;
  config["attn_logit_softcapping"] = nullptr;
  config["final_logit_softcapping"] = nullptr;
}

}  // namespace

std::optional<json> llama3_rope_scaling(std::span<const float> divisors, double rope_theta) {
  check(!divisors.empty() && rope_theta > 1, "no divisors or rope.freq_base not above 1, rope_freqs.weight");
  if (std::all_of(divisors.begin(), divisors.end(), [](float divisor) { return divisor == 1.0f; }))
    return std::nullopt;
  const double factor = divisors.back();  // the longest wavelength is always divided by the full factor
  check(std::isfinite(factor) && factor > 1, "last divisor is not a factor above 1, rope_freqs.weight");
  std::vector<double> wavelengths(divisors.size());
  for (size_t i = 0; i < divisors.size(); ++i)
    wavelengths[i] = 2 * std::numbers::pi * std::pow(rope_theta, static_cast<double>(i) / divisors.size());
  // Llama 3.1 to 3.3 use low 1, high 4. Otherwise fit them: inside the smooth band
  // s = (1/divisor - 1/factor) / (1 - 1/factor) is linear in original / wavelength.
  double low = 1, high = 4;
  if (!llama3_reproduces(divisors, wavelengths, factor, low, high)) {
    std::vector<size_t> band;
    for (size_t i = 0; i < divisors.size(); ++i) {
      if (divisors[i] > 1 + 1e-4 && divisors[i] < factor * (1 - 1e-4)) band.push_back(i);
    }
    bool fitted = false;
    if (band.size() >= 2) {
      const auto smooth = [&](size_t i) { return (1 / divisors[i] - 1 / factor) / (1 - 1 / factor); };
      const double first = kLlama3OriginalContext / wavelengths[band.front()];
      const double last = kLlama3OriginalContext / wavelengths[band.back()];
      const double slope = (smooth(band.back()) - smooth(band.front())) / (last - first);  // 1 / (high - low)
      if (std::isfinite(slope) && slope > 0) {
        low = first - smooth(band.front()) / slope;
        high = low + 1 / slope;
        fitted = low > 0 && llama3_reproduces(divisors, wavelengths, factor, low, high);
      }
    }
    check(fitted, "divisors do not follow llama3 rope scaling (factor ", factor, "), rope_freqs.weight");
  }
  return json{{"rope_type", "llama3"},
              {"factor", factor},
              {"low_freq_factor", low},
              {"high_freq_factor", high},
              {"original_max_position_embeddings", static_cast<int64_t>(kLlama3OriginalContext)}};
}

std::string_view supported_gguf_architectures() { return "llama, qwen2, qwen3, gemma3"; }

void set_bias_flags(json& config, std::span<const std::string> gguf_tensor_names, std::string_view source_name) {
  static const std::regex kBiasPattern(
      R"(blk\.(\d+)\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.bias)");
  const std::string model_type = config.at("model_type");
  const int64_t layers = config.at("num_hidden_layers");
  std::vector<std::set<std::string>> biased(static_cast<size_t>(std::max<int64_t>(layers, 0)));
  bool attention = false, mlp = false;
  for (const std::string& name : gguf_tensor_names) {
    std::smatch match;
    if (!std::regex_match(name, match, kBiasPattern)) continue;
    const int64_t layer = std::stoll(match[1].str());
    check(layer < layers, "tensor ", name, " is past the last layer, ", source_name);
    biased[static_cast<size_t>(layer)].insert(match[2].str());
    if (match[2].str().starts_with("ffn_")) {
      mlp = true;
    } else {
      attention = true;
    }
  }
  std::set<std::string> wanted;
  if (model_type == "qwen2") {
    wanted = {"attn_q", "attn_k", "attn_v"};
  } else {
    if (attention) wanted.insert({"attn_q", "attn_k", "attn_v", "attn_output"});
    config["attention_bias"] = attention;
    if (model_type == "llama") {
      if (mlp) wanted.insert({"ffn_gate", "ffn_up", "ffn_down"});
      config["mlp_bias"] = mlp;
    }
  }
  const auto listed = [](const std::set<std::string>& names) {
    std::string text;
    for (const std::string& name : names) text += (text.empty() ? "" : " ") + name;
    return text.empty() ? std::string("none") : text;
  };
  for (size_t layer = 0; layer < biased.size(); ++layer) {
    check(biased[layer] == wanted, "layer ", layer, " has biases on ", listed(biased[layer]), " where ",
          config.at("architectures").at(0).get<std::string>(), " holds them on ", listed(wanted), ", ",
          source_name);
  }
}

json hf_config_from_gguf(const json& metadata, int64_t vocab_size, bool tied_embeddings, DType dtype) {
  const ArchitectureEntry& entry = architecture_entry(metadata, "GGUF metadata");
  const std::string arch(entry.gguf_name);
  const auto hidden = static_cast<int64_t>(required_number(metadata, arch, "embedding_length"));
  const auto heads = static_cast<int64_t>(required_number(metadata, arch, "attention.head_count"));
  check(heads > 0 && hidden > 0, "invalid head count or embedding length in GGUF metadata");
  const auto kv_heads = static_cast<int64_t>(
      optional_number(metadata, arch + ".attention.head_count_kv").value_or(static_cast<double>(heads)));
  const auto head_dim = static_cast<int64_t>(
      optional_number(metadata, arch + ".attention.key_length").value_or(static_cast<double>(hidden / heads)));
  json config = {
      {"architectures", json::array({std::string(entry.hf_class)})},
      {"model_type", std::string(entry.model_type)},
      {"hidden_size", hidden},
      {"intermediate_size", static_cast<int64_t>(required_number(metadata, arch, "feed_forward_length"))},
      {"num_hidden_layers", static_cast<int64_t>(required_number(metadata, arch, "block_count"))},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"max_position_embeddings",
       static_cast<int64_t>(optional_number(metadata, arch + ".context_length").value_or(4096))},
      {"rms_norm_eps", optional_number(metadata, arch + ".attention.layer_norm_rms_epsilon").value_or(1e-6)},
      {"rope_theta", optional_number(metadata, arch + ".rope.freq_base").value_or(10000.0)},
      {"vocab_size", vocab_size},
      {"tie_word_embeddings", tied_embeddings},
      {"torch_dtype", std::string(dtype_torch_name(dtype))},
      {"use_cache", true},
  };
  if (entry.model_type == "llama") {
    config["attention_bias"] = false;
    config["mlp_bias"] = false;
  }
  if (entry.model_type == "qwen3") config["attention_bias"] = false;
  if (entry.model_type == "qwen2" || entry.model_type == "qwen3") {
    config["use_sliding_window"] = false;
    config["max_window_layers"] = config["num_hidden_layers"];
  }
  if (entry.model_type == "gemma3_text") add_gemma3_config(metadata, config);
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
    if (auto value = optional_number(metadata, key)) {
      config[std::string(key).find("bos") != std::string::npos ? "bos_token_id" : "eos_token_id"] =
          static_cast<int64_t>(*value);
    }
  }
  auto scaling_type = metadata.find(arch + ".rope.scaling.type");
  if (scaling_type != metadata.end() && scaling_type->is_string() && *scaling_type != "none") {
    const std::string type = scaling_type->get<std::string>();
    check(type == "linear" || type == "yarn", "unsupported rope scaling type '", type,
          "' (supported: linear, yarn) in GGUF metadata");
    const auto factor = optional_number(metadata, arch + ".rope.scaling.factor");
    check(factor.has_value(), "missing GGUF metadata ", arch, ".rope.scaling.factor");
    config["rope_scaling"] = {{"type", type}, {"rope_type", type}, {"factor", *factor}};
    if (type == "yarn") {
      // YaRN interpolates relative to the context the model was trained with.
      config["rope_scaling"]["original_max_position_embeddings"] = static_cast<int64_t>(
          required_number(metadata, arch, "rope.scaling.original_context_length"));
    }
  }
  return config;
}

std::optional<std::string> hf_tensor_name(std::string_view gguf_name, std::string_view gguf_architecture) {
  static const std::map<std::string, std::string, std::less<>> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  if (auto found = kGlobal.find(gguf_name); found != kGlobal.end()) return found->second;
  if (gguf_name == "rope_freqs.weight") return std::nullopt;
  static const std::map<std::string, std::string, std::less<>> kLayer = {
      {"attn_norm", "input_layernorm"},       {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},         {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},         {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},    {"attn_k_norm", "self_attn.k_norm"},
      {"ffn_gate", "mlp.gate_proj"},          {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  static const std::map<std::string, std::string, std::less<>> kGemma3Norms = {
      {"ffn_norm", "pre_feedforward_layernorm"},
      {"post_attention_norm", "post_attention_layernorm"},
      {"post_ffw_norm", "post_feedforward_layernorm"},
  };
  static const std::regex kLayerPattern(R"(blk\.(\d+)\.([a-z_]+)\.(weight|bias))");
  std::match_results<std::string_view::const_iterator> match;
  if (std::regex_match(gguf_name.begin(), gguf_name.end(), match, kLayerPattern)) {
    if (gguf_architecture == "gemma3") {
      if (auto found = kGemma3Norms.find(match[2].str()); found != kGemma3Norms.end())
        return concat("model.layers.", match[1].str(), ".", found->second, ".", match[3].str());
    }
    if (auto found = kLayer.find(match[2].str()); found != kLayer.end())
      return concat("model.layers.", match[1].str(), ".", found->second, ".", match[3].str());
  }
  fail("unknown GGUF tensor '", gguf_name, "' (no Hugging Face name known for it)");
}

void undo_rope_permutation(std::span<const float> gguf_rows, int64_t rows, int64_t columns, int64_t heads,
                           std::span<float> hf_rows) {
  check(heads > 0 && rows % heads == 0 && (rows / heads) % 2 == 0,
        "rows (", rows, ") not divisible into ", heads, " heads of even size");
  const int64_t head_dim = rows / heads;
  const int64_t half = head_dim / 2;
  for (int64_t head = 0; head < heads; ++head) {
    for (int64_t a = 0; a < half; ++a) {
      for (int64_t b = 0; b < 2; ++b) {
        const int64_t source = head * head_dim + 2 * a + b;
        const int64_t target = head * head_dim + b * half + a;
        std::copy_n(gguf_rows.begin() + source * columns, columns, hf_rows.begin() + target * columns);
      }
    }
  }
}

ImportSummary import_gguf(const fs::path& gguf_path, const fs::path& output_folder, const ImportOptions& options) {
  check(options.dtype == DType::BF16 || options.dtype == DType::F16 || options.dtype == DType::F32,
        "--dtype must be bf16, f16 or f32");
  const GgufFile gguf = GgufFile::open(gguf_path);
  const std::string file = gguf_path.string();
  const json& metadata = gguf.metadata();
  const ArchitectureEntry& entry = architecture_entry(metadata, file);
  const std::string arch(entry.gguf_name);

  const GgufTensorInfo* embedding = gguf.find("token_embd.weight");
  check(embedding != nullptr && embedding->dims.size() == 2, "missing token_embd.weight, ", file);
  const bool tied = gguf.find("output.weight") == nullptr;
  json config = hf_config_from_gguf(metadata, static_cast<int64_t>(embedding->dims[1]), tied, options.dtype);
  const int64_t heads = config["num_attention_heads"];
  const int64_t kv_heads = config["num_key_value_heads"];
  std::vector<std::string> tensor_names;
  for (const GgufTensorInfo& tensor : gguf.tensors()) tensor_names.push_back(tensor.name);
  set_bias_flags(config, tensor_names, file);
  // llama.cpp keeps Llama 3's rope scaling only as this tensor; HF needs it back in the config.
  if (const GgufTensorInfo* rope_freqs = gguf.find("rope_freqs.weight")) {
    check(!config.contains("rope_scaling"), "rope_freqs.weight next to rope.scaling metadata, ", file);
    const std::vector<float> divisors = gguf.dequantize(*rope_freqs);
    check(static_cast<int64_t>(divisors.size()) * 2 == config["head_dim"].get<int64_t>(),
          "rope_freqs.weight has ", divisors.size(), " entries for head_dim ", config["head_dim"], ", ", file);
    if (auto scaling = llama3_rope_scaling(divisors, config["rope_theta"].get<double>()))
      config["rope_scaling"] = *scaling;
  }

  // Convert the tokenizer first: a model without a usable tokenizer is not imported.
  const HfTokenizerFiles tokenizer = gguf_to_hf_tokenizer(metadata, file);

  struct Planned {
    const GgufTensorInfo* source;
    std::string name;
    int64_t rope_heads;  // > 0: undo the Q/K permutation with this many heads
    bool norm_minus_one;  // gemma3 norm: llama.cpp stored HF's weight + 1
  };
  std::vector<Planned> planned;
  std::vector<TensorDeclaration> declarations;
  uint64_t total_input = 0;
  for (const GgufTensorInfo& tensor : gguf.tensors()) {
    std::optional<std::string> name = hf_tensor_name(tensor.name, arch);
    if (!name) continue;
    check(gguf_type_is_supported(static_cast<GgufTensorType>(tensor.type)), "unsupported tensor type ",
          gguf_type_name(tensor.type), " in tensor ", tensor.name, ", ", file);
    int64_t rope_heads = 0;
    if (entry.rope_permuted && tensor.dims.size() <= 2) {
      if (name->find("self_attn.q_proj.") != std::string::npos) rope_heads = heads;
      if (name->find("self_attn.k_proj.") != std::string::npos) rope_heads = kv_heads;
    }
    const bool norm_minus_one = arch == "gemma3" && name->ends_with("norm.weight");
    planned.push_back({&tensor, *name, rope_heads, norm_minus_one});
    declarations.push_back({*name, options.dtype, tensor.torch_shape()});
    total_input += tensor.byte_size;
  }

  StagedDirectory staged(output_folder);
  ShardedSafetensorsWriter writer(staged.path(), declarations, uint64_t{5} << 30, {{"format", "pt"}});
  Progress progress(options.progress, "import", planned.size(), total_input);
  std::vector<float> hf_order;
  std::vector<std::byte> converted;
  for (const Planned& item : planned) {
    throw_if_interrupted();
    std::vector<float> values = gguf.dequantize(*item.source);
    for (float value : values) {
      if (!std::isfinite(value)) fail("non-finite weight in tensor ", item.source->name, ", ", file);
    }
    if (item.norm_minus_one) {
      for (float& value : values) value -= 1.0f;
    }
    if (item.rope_heads > 0) {
      const std::vector<int64_t> shape = item.source->torch_shape();
      const int64_t rows = shape[0];
      const int64_t columns = shape.size() == 2 ? shape[1] : 1;
      hf_order.resize(values.size());
      undo_rope_permutation(values, rows, columns, item.rope_heads, hf_order);
      values.swap(hf_order);
    }
    converted.resize(values.size() * dtype_size(options.dtype));
    convert_from_float(values, options.dtype, converted);
    writer.write(item.name, converted);
    progress.advance(item.source->byte_size, item.name);
  }
  writer.close();
  progress.finish();

  write_text_file(staged.path() / "config.json", config.dump(2) + "\n");
  write_hf_tokenizer_files(tokenizer, staged.path());
  json generation = {{"_from_model_config", true}};
  if (config.contains("bos_token_id")) generation["bos_token_id"] = config["bos_token_id"];
  if (config.contains("eos_token_id")) generation["eos_token_id"] = config["eos_token_id"];
  write_text_file(staged.path() / "generation_config.json", generation.dump(2) + "\n");

  ImportSummary summary;
  summary.architecture = arch;
  summary.tensors = planned.size();
  for (const auto& entry_path : fs::directory_iterator(staged.path())) summary.bytes_out += entry_path.file_size();
  staged.commit();
  summary.seconds = progress.seconds();
  return summary;
}

}  // namespace hlwq
