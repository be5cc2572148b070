#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/file_writer.h"
#include "core/thread_pool.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "io/safetensors.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

json BenchReport::to_json() const {
  return {{"model", model},
          {"threads", threads},
          {"read_bandwidth_gb_per_second", read_bandwidth_bytes_per_second / 1e9},
          {"decode_bytes_per_token", decode_bytes_per_token},
          {"prefill_tokens_per_second", prefill_tokens_per_second},
          {"decode_tokens_per_second", decode_tokens_per_second},
          {"decode_roofline_tokens_per_second", decode_roofline_tokens_per_second},
          {"decode_roofline_fraction", decode_roofline_fraction}};
}

std::string BenchReport::to_text() const {
  char line[512];
  std::snprintf(line, sizeof line,
                "%s: prefill %.1f tok/s, decode %.2f tok/s; %.1f MB read per token, memory read %.2f GB/s "
                "(%d threads) -> roofline %.2f tok/s, reached %.0f%%\n",
                model.c_str(), prefill_tokens_per_second, decode_tokens_per_second, decode_bytes_per_token / 1e6,
                read_bandwidth_bytes_per_second / 1e9, threads, decode_roofline_tokens_per_second,
                100 * decode_roofline_fraction);
  return line;
}

double measure_read_bandwidth(int threads) {
  ThreadPool pool(threads);
  const size_t bytes = size_t{1} << 30;  // 1 GiB: far beyond any last-level cache
  AlignedBuffer buffer(bytes);
  std::memset(buffer.data(), 1, bytes);
  const auto words = buffer.as<uint64_t>();
  double best = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 8, 0);
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<size_t>(pool.size()), [&](size_t begin, size_t end) {
      for (size_t part = begin; part < end; ++part) {
        const size_t first = words.size() * part / pool.size(), last = words.size() * (part + 1) / pool.size();
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = first; i + 4 <= last; i += 4) {
          a += words[i];
          b += words[i + 1];
          c += words[i + 2];
          d += words[i + 3];
        }
        sums[part * 8] = a + b + c + d;
      }
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t total = 0;
    for (uint64_t sum : sums) total += sum;
    check(total > 0, "internal: bandwidth read optimized away");
    best = std::max(best, bytes / seconds);
  }
  return best;
}

BenchReport bench_model(const fs::path& folder, const BenchOptions& options) {
  check(options.prompt_tokens >= 1 && options.generated_tokens >= 1, "-p and -n must be at least 1");
  ThreadPool pool(options.threads);
  const Model model = Model::load(folder, pool);
  BenchReport report;
  report.model = folder.filename().string();
  report.threads = pool.size();
  report.read_bandwidth_bytes_per_second = measure_read_bandwidth(options.threads);
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
  double best_prefill = 0, best_decode = 0;
  for (int repetition = 0; repetition < std::max(1, options.repetitions); ++repetition) {
    KvCache cache = make_kv_cache(model, context, DType::F16);
    auto start = std::chrono::steady_clock::now();
    std::vector<float> logits = forward(model, cache, prompt, 0, LogitsFor::last_position, pool);
    const double prefill = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    start = std::chrono::steady_clock::now();
    int32_t token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    for (int64_t i = 0; i < options.generated_tokens; ++i) {
      logits = forward(model, cache, std::span<const int32_t>(&token, 1), options.prompt_tokens + i,
                       LogitsFor::last_position, pool);
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
  return report;
}

namespace {

struct SyntheticShape {
  const char* name;
  int64_t hidden, intermediate, layers, heads, kv_heads, vocab;
  bool tied;
};

constexpr SyntheticShape kShapes[] = {
    {"smollm2-135m", 576, 1536, 30, 9, 3, 49152, true},
    {"qwen3-0.6b", 1024, 3072, 28, 16, 8, 151936, true},
    {"llama3-1b", 2048, 8192, 16, 32, 8, 128256, true},
    // 8.2 B weights, 16.4 GB of BF16: larger than the memory of a small machine (largest tensor:
    // the 1.24 GB embedding and lm_head).
    {"qwen3-8b", 4096, 12288, 36, 32, 8, 151936, false},
};

// "hlwq-qN" with N from 2 to 8: N; anything else: 0.
int hlwq_format_bits(const std::string& format) {
  if (format.size() != 7 || !format.starts_with("hlwq-q") || format[6] < '2' || format[6] > '8') return 0;
  return format[6] - '0';
}

}  // namespace

fs::path make_synthetic_model(const std::string& shape_name, const std::string& format, const fs::path& work,
                              int threads) {
  const SyntheticShape* shape = nullptr;
  for (const SyntheticShape& candidate : kShapes) {
    if (shape_name == candidate.name) shape = &candidate;
  }
  check(shape != nullptr, "unknown synthetic model '", shape_name, "' (known: smollm2-135m, qwen3-0.6b, llama3-1b, qwen3-8b)");
  const int hlwq_bits = hlwq_format_bits(format);
  check(format == "bf16" || hlwq_bits != 0 || format == "mlx4" || format == "int4", "unknown --format '", format,
        "' (bf16, hlwq-q2 to hlwq-q8, mlx4, int4)");
  const fs::path dense = work / (shape_name + "-bf16");
  fs::create_directories(dense);
  const int64_t head_dim = shape->hidden / shape->heads;
  std::vector<TensorDeclaration> declarations = {{"model.embed_tokens.weight", DType::BF16, {shape->vocab, shape->hidden}}};
  for (int64_t layer = 0; layer < shape->layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    declarations.push_back({p + "input_layernorm.weight", DType::BF16, {shape->hidden}});
    declarations.push_back({p + "self_attn.q_proj.weight", DType::BF16, {shape->heads * head_dim, shape->hidden}});
    declarations.push_back({p + "self_attn.k_proj.weight", DType::BF16, {shape->kv_heads * head_dim, shape->hidden}});
    declarations.push_back({p + "self_attn.v_proj.weight", DType::BF16, {shape->kv_heads * head_dim, shape->hidden}});
    declarations.push_back({p + "self_attn.o_proj.weight", DType::BF16, {shape->hidden, shape->heads * head_dim}});
    declarations.push_back({p + "post_attention_layernorm.weight", DType::BF16, {shape->hidden}});
    declarations.push_back({p + "mlp.gate_proj.weight", DType::BF16, {shape->intermediate, shape->hidden}});
    declarations.push_back({p + "mlp.up_proj.weight", DType::BF16, {shape->intermediate, shape->hidden}});
    declarations.push_back({p + "mlp.down_proj.weight", DType::BF16, {shape->hidden, shape->intermediate}});
  }
  declarations.push_back({"model.norm.weight", DType::BF16, {shape->hidden}});
  if (!shape->tied) declarations.push_back({"lm_head.weight", DType::BF16, {shape->vocab, shape->hidden}});
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
  const json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                       {"hidden_size", shape->hidden}, {"intermediate_size", shape->intermediate},
                       {"num_hidden_layers", shape->layers}, {"num_attention_heads", shape->heads},
                       {"num_key_value_heads", shape->kv_heads}, {"head_dim", head_dim},
                       {"vocab_size", shape->vocab}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0},
                       {"max_position_embeddings", 8192}, {"tie_word_embeddings", shape->tied},
                       {"torch_dtype", "bfloat16"}};
  write_text_file(dense / "config.json", config.dump(2));
  // quantize/export want a tokenizer in the folder; a synthetic model has none that means anything.
  write_text_file(dense / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  if (format == "bf16") return dense;
  const fs::path converted = work / (shape_name + "-" + format);
  if (hlwq_bits != 0) {
    QuantizeOptions options;
    options.params.bits = hlwq_bits;
    options.fit_block_to_rows = true;  // as `hlwq quantize` does by default
    options.params.gain = BlockGain::least_squares;
    options.threads = threads;
    quantize_model(dense, converted, options);
  } else {
    ExportOptions options;
    options.target = format == "mlx4" ? ExportTarget::mlx : ExportTarget::ct_int4;
    options.threads = threads;
    export_model(dense, converted, options);
  }
  return converted;
}

}  // namespace hlwq
