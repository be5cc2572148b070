#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "core/aligned_buffer.h"
#include "core/file_writer.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/model_runner.h"
#include "io/safetensors.h"
#include "ops/cpu/cpu_backend.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

json BenchReport::to_json() const {
  return {{"model", model},
          {"device", device},
          {"threads", threads},
          {"read_bandwidth_gb_per_second", read_bandwidth_bytes_per_second / 1e9},
          {"decode_bytes_per_token", decode_bytes_per_token},
          {"prefill_tokens_per_second", prefill_tokens_per_second},
          {"decode_tokens_per_second", decode_tokens_per_second},
          {"decode_roofline_tokens_per_second", decode_roofline_tokens_per_second},
          {"decode_roofline_fraction", decode_roofline_fraction},
          {"memory_bytes",
           {{"weights", memory.weights},
            {"kv_cache", memory.kv_cache},
            {"scratch", memory.scratch},
            {"peak_in_use", memory.peak_in_use}}}};
}

std::string BenchReport::to_text() const {
  char line[768];
  std::snprintf(line, sizeof line,
                "%s on %s: prefill %.1f tok/s, decode %.2f tok/s; %.1f MB read per token, memory read %.2f GB/s "
                "-> roofline %.2f tok/s, reached %.0f%%; memory: weights %.2f GB, KV cache %.2f GB, scratch %.2f GB%s\n",
                model.c_str(), device.c_str(), prefill_tokens_per_second, decode_tokens_per_second,
                decode_bytes_per_token / 1e6, read_bandwidth_bytes_per_second / 1e9, decode_roofline_tokens_per_second,
                100 * decode_roofline_fraction, memory.weights / 1e9, memory.kv_cache / 1e9, memory.scratch / 1e9,
                memory.peak_in_use > 0 ? (", peak in use " + std::to_string(memory.peak_in_use / 1e9).substr(0, 5) +
                                          " GB")
                                             .c_str()
                                       : "");
  return line;
}

BenchReport bench_model(const fs::path& folder, const BenchOptions& options) {
  ThreadPool pool(options.threads);
  const Model model = Model::load(folder, pool);
  return bench_loaded_model(model, folder.filename().string(), options);
}

BenchReport bench_loaded_model(const Model& model, const std::string& name, const BenchOptions& options) {
  check(options.prompt_tokens >= 1 && options.generated_tokens >= 1, "-p and -n must be at least 1");
  check(options.prefill_chunk >= 1, "prefill chunk ", options.prefill_chunk);
  const std::unique_ptr<Backend> backend = make_backend(options.backend, options.threads);
  BenchReport report;
  report.model = name;
  report.device = backend->description();
  report.threads = options.backend == BackendKind::cpu ? static_cast<CpuBackend&>(*backend).pool().size() : 0;
  report.read_bandwidth_bytes_per_second = backend->measure_read_bandwidth();
  // Decode reads every layer weight and the output head once per token; an untied embedding
  // table is read one row per token.
  report.decode_bytes_per_token =
      model.weight_bytes() - (model.config().tie_word_embeddings ? 0 : model.embedding().stored_bytes());
  std::mt19937 generator(1);
  std::vector<int32_t> prompt(options.prompt_tokens);
  for (int32_t& token : prompt) token = static_cast<int32_t>(generator() % model.config().vocab_size);
  const int64_t context = options.prompt_tokens + options.generated_tokens;
  check(context <= model.config().max_position_embeddings, "-p + -n (", context,
        ") exceeds the model's context (", model.config().max_position_embeddings, ")");
  RunnerOptions runner_options;
  runner_options.context_length = context;
  runner_options.max_pass_tokens = std::min(options.prompt_tokens, options.prefill_chunk);
  runner_options.max_output_rows = 1;
  ModelRunner runner(model, *backend, runner_options);
  double best_prefill = 0, best_decode = 0;
  std::vector<float> logits;
  for (int repetition = 0; repetition < std::max(1, options.repetitions); ++repetition) {
    auto start = std::chrono::steady_clock::now();
    for (int64_t first = 0; first < options.prompt_tokens; first += runner_options.max_pass_tokens) {
      const int64_t count = std::min(runner_options.max_pass_tokens, options.prompt_tokens - first);
      runner.forward(0, std::span<const int32_t>(prompt).subspan(first, count), first, LogitsFrom{count - 1}, logits);
    }
    const double prefill = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    start = std::chrono::steady_clock::now();
    int32_t token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    for (int64_t i = 0; i < options.generated_tokens; ++i) {
      runner.forward(0, std::span<const int32_t>(&token, 1), options.prompt_tokens + i, LogitsFrom{0}, logits);
      token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double decode = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best_prefill = std::max(best_prefill, options.prompt_tokens / prefill);
    best_decode = std::max(best_decode, options.generated_tokens / decode);
  }
  report.prefill_tokens_per_second = best_prefill;
  report.decode_tokens_per_second = best_decode;
  report.decode_roofline_tokens_per_second = report.read_bandwidth_bytes_per_second / report.decode_bytes_per_token;
  report.decode_roofline_fraction = report.decode_tokens_per_second / report.decode_roofline_tokens_per_second;
  report.memory = runner.memory();
  return report;
}

namespace {

struct SyntheticShape {
  const char* name;
  int64_t hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
  bool tied, qk_norm;
  double rope_theta;
};

constexpr SyntheticShape kShapes[] = {
    {"smollm2-135m", 576, 1536, 30, 9, 3, 64, 49152, true, false, 100000.0},
    {"qwen3-0.6b", 1024, 3072, 28, 16, 8, 128, 151936, true, true, 1000000.0},
    {"llama3-1b", 2048, 8192, 16, 32, 8, 64, 128256, true, false, 500000.0},
    {"llama3-8b", 4096, 14336, 32, 32, 8, 128, 128256, false, false, 500000.0},
    {"qwen3-8b", 4096, 12288, 36, 32, 8, 128, 151936, false, true, 1000000.0},
    // The hybrid (see synthetic_model_config): 3 gated delta-net layers to 1 gated attention layer.
    {"qwen3.5-9b", 4096, 12288, 32, 16, 4, 256, 248320, false, true, 10000000.0},
};

// "hlwq-qN" with N from 2 to 8: N; anything else: 0.
int hlwq_format_bits(const std::string& format) {
  if (format.size() != 7 || !format.starts_with("hlwq-q") || format[6] < '2' || format[6] > '8') return 0;
  return format[6] - '0';
}

// "trellis-k4": trellis codes of 4 bits a value (2..8) with the default 12 state bits; 0 otherwise.
int trellis_format_bits(const std::string& format) {
  if (format.size() != 10 || !format.starts_with("trellis-k") || format[9] < '2' || format[9] > '8') return 0;
  return format[9] - '0';
}

constexpr int kSyntheticTrellisStateBits = 12;

}  // namespace

ModelConfig synthetic_model_config(const std::string& shape_name) {
  const SyntheticShape* shape = nullptr;
  for (const SyntheticShape& candidate : kShapes) {
    if (shape_name == candidate.name) shape = &candidate;
  }
  check(shape != nullptr, "unknown synthetic model '", shape_name,
        "' (known: smollm2-135m, qwen3-0.6b, llama3-1b, llama3-8b, qwen3-8b, qwen3.5-9b)");
  ModelConfig config;
  config.architecture = shape->qk_norm ? Architecture::qwen3 : Architecture::llama;
  config.hidden_size = shape->hidden;
  config.intermediate_size = shape->intermediate;
  config.layers = shape->layers;
  config.heads = shape->heads;
  config.kv_heads = shape->kv_heads;
  config.head_dim = shape->head_dim;
  config.vocab_size = shape->vocab;
  config.max_position_embeddings = 32768;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = shape->rope_theta;
  config.tie_word_embeddings = shape->tied;
  config.qk_norm = shape->qk_norm;
  config.rotary_dim = config.head_dim;
  config.attention_scale = 1.0 / std::sqrt(static_cast<double>(config.head_dim));
  if (std::string_view(shape->name).starts_with("qwen3.5")) {
    // Qwen3.5-9B's config: linear 16 key / 32 value heads of 128, conv kernel 4, a quarter of each
    // attention head rotated, every fourth layer full attention.
    config.architecture = Architecture::qwen3_5;
    config.rms_norm_eps = 1e-6;
    config.linear_attention = LinearAttentionConfig{16, 32, 128, 128, 4};
    for (int64_t layer = 0; layer < config.layers; ++layer) {
      config.layer_kinds.push_back(layer % 4 == 3 ? LayerKind::full_attention : LayerKind::linear_attention);
    }
    config.rotary_dim = config.head_dim / 4;
    config.attention_output_gate = true;
    config.norm_adds_one = true;
  }
  return config;
}

RandomLinearFormat synthetic_format(const std::string& format) {
  if (format == "bf16") return RandomLinearFormat{LinearFormat::dense, DType::BF16};
  if (const int bits = hlwq_format_bits(format)) {
    RandomLinearFormat chosen{LinearFormat::hlwq};
    chosen.bits = bits;
    return chosen;
  }
  if (const int bits = trellis_format_bits(format)) {
    RandomLinearFormat chosen{LinearFormat::trellis};
    chosen.bits = bits;
    chosen.state_bits = kSyntheticTrellisStateBits;
    chosen.trellis_codebook = std::make_shared<const std::vector<float>>(trellis_codebook(chosen.state_bits));
    return chosen;
  }
  if (format == "mlx4") return RandomLinearFormat{LinearFormat::mlx_affine, DType::BF16, 4, 128, 64};
  if (format == "int4") return RandomLinearFormat{LinearFormat::ct_int4, DType::BF16, 4, 128, 128};
  fail("unknown --format '", format, "' (bf16, hlwq-q2 to hlwq-q8, trellis-k2 to trellis-k8, mlx4, int4)");
}

fs::path write_synthetic_model(const std::string& shape_name, const std::string& format, const fs::path& work,
                               int threads) {
  const ModelConfig config = synthetic_model_config(shape_name);
  const RandomLinearFormat chosen = synthetic_format(format);  // checks the name
  const fs::path dense = work / (shape_name + "-bf16");
  fs::create_directories(dense);
  const int64_t hidden = config.hidden_size, head_dim = config.head_dim;
  std::vector<TensorDeclaration> declarations = {
      {"model.embed_tokens.weight", DType::BF16, {config.vocab_size, hidden}}};
  for (int64_t layer = 0; layer < config.layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    declarations.push_back({p + "input_layernorm.weight", DType::BF16, {hidden}});
    declarations.push_back({p + "self_attn.q_proj.weight", DType::BF16, {config.heads * head_dim, hidden}});
    declarations.push_back({p + "self_attn.k_proj.weight", DType::BF16, {config.kv_heads * head_dim, hidden}});
    declarations.push_back({p + "self_attn.v_proj.weight", DType::BF16, {config.kv_heads * head_dim, hidden}});
    declarations.push_back({p + "self_attn.o_proj.weight", DType::BF16, {hidden, config.heads * head_dim}});
    if (config.qk_norm) {
      declarations.push_back({p + "self_attn.q_norm.weight", DType::BF16, {head_dim}});
      declarations.push_back({p + "self_attn.k_norm.weight", DType::BF16, {head_dim}});
    }
    declarations.push_back({p + "post_attention_layernorm.weight", DType::BF16, {hidden}});
    declarations.push_back({p + "mlp.gate_proj.weight", DType::BF16, {config.intermediate_size, hidden}});
    declarations.push_back({p + "mlp.up_proj.weight", DType::BF16, {config.intermediate_size, hidden}});
    declarations.push_back({p + "mlp.down_proj.weight", DType::BF16, {hidden, config.intermediate_size}});
  }
  declarations.push_back({"model.norm.weight", DType::BF16, {hidden}});
  if (!config.tie_word_embeddings) declarations.push_back({"lm_head.weight", DType::BF16, {config.vocab_size, hidden}});
  {
    SafetensorsWriter writer(dense / "model.safetensors", declarations, {{"format", "pt"}});
    std::mt19937 generator(7);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> values;
    std::vector<std::byte> bytes;
    for (const TensorDeclaration& declaration : declarations) {
      values.resize(declaration.byte_size() / 2);
      for (float& value : values) value = normal(generator) + (declaration.shape.size() == 1 ? 1.0f : 0.0f);
      bytes.resize(declaration.byte_size());
      convert_from_float(values, DType::BF16, bytes);
      writer.write(declaration.name, bytes);
    }
    writer.close();
  }
  const bool qwen3 = config.architecture == Architecture::qwen3;
  const json config_json = {{"architectures", {qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM"}},
                            {"model_type", qwen3 ? "qwen3" : "llama"},
                            {"hidden_size", hidden}, {"intermediate_size", config.intermediate_size},
                            {"num_hidden_layers", config.layers}, {"num_attention_heads", config.heads},
                            {"num_key_value_heads", config.kv_heads}, {"head_dim", head_dim},
                            {"vocab_size", config.vocab_size}, {"rms_norm_eps", config.rms_norm_eps},
                            {"rope_theta", config.rope_theta}, {"max_position_embeddings", config.max_position_embeddings},
                            {"tie_word_embeddings", config.tie_word_embeddings}, {"torch_dtype", "bfloat16"}};
  write_text_file(dense / "config.json", config_json.dump(2));
  // quantize/export want a tokenizer in the folder; a synthetic model has none that means anything.
  write_text_file(dense / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  if (format == "bf16") return dense;
  const fs::path converted = work / (shape_name + "-" + format);
  if (chosen.format == LinearFormat::hlwq || chosen.format == LinearFormat::trellis) {
    QuantizeOptions options;
    options.params.bits = chosen.bits;
    options.fit_block_to_rows = true;  // as `hlwq quantize` does by default
    options.params.gain = BlockGain::least_squares;
    if (chosen.format == LinearFormat::trellis) options.trellis_state_bits = chosen.state_bits;
    options.threads = threads;
    quantize_model(dense, converted, options);
  } else {
    ExportOptions options;
    options.target = chosen.format == LinearFormat::mlx_affine ? ExportTarget::mlx : ExportTarget::ct_int4;
    options.threads = threads;
    export_model(dense, converted, options);
  }
  return converted;
}


}  // namespace hlwq
