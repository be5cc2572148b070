#include "eval/model_perplexity.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>

#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "ops/cpu/cpu_backend.h"
#include "eval/kl_divergence.h"
#include "eval/logits_file.h"
#include "io/model_folder.h"
#include "tokenizer/tokenizer.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

json ModelPerplexityReport::to_json() const {
  json value = perplexity.to_json();
  value["model"] = model;
  value["protocol"] = protocol;
  value["backend"] = backend;
  value["tokens_in_text"] = tokens_in_text;
  value["seconds"] = seconds;
  value["forward_seconds"] = forward_seconds;
  value["tokens_per_second"] = tokens_per_second;
  if (kl_divergence) value["kl_divergence"] = *kl_divergence;
  return value;
}

std::string ModelPerplexityReport::to_text() const {
  char line[512];
  std::string text;
  std::snprintf(line, sizeof line, "%s: PPL = %.4f +/- %.4f over %lld tokens (%lld windows, %s; text %lld tokens)\n",
                model.c_str(), perplexity.perplexity, perplexity.perplexity_stderr,
                static_cast<long long>(perplexity.tokens_scored), static_cast<long long>(perplexity.windows),
                protocol.c_str(), static_cast<long long>(tokens_in_text));
  text += line;
  if (kl_divergence) {
    const json& k = *kl_divergence;
    std::snprintf(line, sizeof line,
                  "KLD: mean %.6f +/- %.6f, median %.6f, p90 %.6f, p99 %.6f, p99.9 %.6f, max %.4f; "
                  "top-1 agreement %.2f%%; RMS dp %.3f%%\n",
                  k["mean"].get<double>(), k["mean_stderr"].get<double>(), k["median"].get<double>(),
                  k["p90"].get<double>(), k["p99"].get<double>(), k["p99_9"].get<double>(), k["max"].get<double>(),
                  100 * k["top1_agreement"].get<double>(), 100 * k["rms_delta_p"].get<double>());
    text += line;
  }
  std::snprintf(line, sizeof line, "%.1f s, %.1f tokens/s\n", seconds, tokens_per_second);
  text += line;
  return text;
}

namespace {

std::string read_text_file(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  check(stream.good(), "cannot read text file, ", path.string());
  return {std::istreambuf_iterator<char>(stream), {}};
}

// llama.cpp puts BOS first in each window only when the vocabulary adds BOS by default.
std::optional<int32_t> window_bos(const fs::path& folder, const Tokenizer& tokenizer) {
  const fs::path config_path = folder / "tokenizer_config.json";
  if (!fs::exists(config_path)) return std::nullopt;
  const json config = read_json_file(config_path);
  const auto add_bos = config.find("add_bos_token");
  if (add_bos == config.end() || !add_bos->is_boolean() || !add_bos->get<bool>()) return std::nullopt;
  return tokenizer.bos_id();
}

}  // namespace

ModelPerplexityReport model_perplexity(const fs::path& model_folder, const fs::path& text_file,
                                       const ModelPerplexityOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ThreadPool pool(options.threads);
  const Model model = Model::load(model_folder, pool);
  const Tokenizer tokenizer = Tokenizer::from_folder(model_folder);
  const std::vector<int32_t> tokens = tokenizer.encode(read_text_file(text_file), false);
  const int64_t vocab = model.config().vocab_size;
  // One runner for every window: each window starts again at position 0 of its one sequence.
  std::unique_ptr<Backend> backend = options.backend == BackendKind::cpu ? std::make_unique<CpuBackend>(pool)
                                                                         : make_backend(options.backend, options.threads);
  RunnerOptions runner_options;
  runner_options.context_length = options.context;
  runner_options.kv_cache_dtype = options.kv_cache_dtype;
  ModelRunner runner(model, *backend, runner_options);

  PerplexityOptions protocol{options.context, options.stride, std::nullopt};
  if (options.stride == 0) protocol.bos_token = window_bos(model_folder, tokenizer);
  std::vector<int32_t> usable = tokens;
  if (options.max_windows > 0) {
    const int64_t step = options.stride == 0 ? options.context : options.stride;
    const int64_t limit = options.stride == 0 ? options.max_windows * options.context
                                              : (options.max_windows - 1) * step + options.context;
    if (static_cast<int64_t>(usable.size()) > limit) usable.resize(limit);
  }

  std::optional<LogitsFileWriter> saver;
  if (options.save_logits) saver.emplace(*options.save_logits, static_cast<uint32_t>(vocab));
  std::optional<LogitsFile> base;
  std::optional<KlDivergenceAccumulator> divergence;
  if (options.kld_base) {
    base = LogitsFile::open(*options.kld_base);
    check(base->vocab_size() == static_cast<uint32_t>(vocab), "vocabulary of ", options.kld_base->string(), " (",
          base->vocab_size(), ") differs from the model's (", vocab, ")");
    divergence.emplace();
  }
  // Per-token work of a window (quantizing rows to save, comparing with the reference) runs on the
  // pool into one slot per token; the slots are then written and accumulated in token order, so
  // the file and the statistics do not depend on the thread count.
  std::vector<QuantizedLogProbs> saved_rows;
  std::vector<TokenDivergence> divergences;
  uint64_t scored_index = 0;  // tokens scored in earlier windows
  const ScoredWindowVisitor visitor = [&](const ScoredWindow& window) {
    const size_t count = window.targets.size();
    if (base) {
      for (size_t k = 0; k < count; ++k) {
        check(scored_index + k < base->count(), "--kld-base has fewer tokens (", base->count(),
              ") than this run scores; use the same text, --ctx and --stride");
        check(base->target(scored_index + k) == window.targets[k], "--kld-base token ", scored_index + k,
              " differs from this run's; use the same text, tokenizer, --ctx and --stride");
      }
    }
    saved_rows.resize(saver ? count : 0);  // keeps the rows' storage from window to window
    divergences.resize(base ? count : 0);
    pool.parallel_for(count, [&](size_t begin, size_t end) {
      std::vector<float> reference(base ? vocab : 0);
      for (size_t k = begin; k < end; ++k) {
        if (saver) quantize_log_probs(window.row(k), window.targets[k], saved_rows[k], window.log_sums[k]);
        if (base) {
          base->log_probs(scored_index + k, reference);
          divergences[k] = token_divergence(reference, window.row(k), window.targets[k], window.log_sums[k]);
        }
      }
    });
    for (size_t k = 0; k < count; ++k) {
      if (saver) saver->append(saved_rows[k]);
      if (divergence) divergence->add(divergences[k]);
    }
    scored_index += count;
  };
  int64_t tokens_through = 0;
  double forward_seconds = 0;
  const WindowLogits window_logits = [&](std::span<const int32_t> window, int64_t first_row,
                                         std::vector<float>& logits) {
    const auto pass_start = std::chrono::steady_clock::now();
    runner.forward(0, window, 0, LogitsFrom{first_row}, logits);
    forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_start).count();
    tokens_through += static_cast<int64_t>(window.size());
    if (options.progress) std::fprintf(stderr, "\rppl: %lld tokens", static_cast<long long>(tokens_through));
  };
  ModelPerplexityReport report;
  report.model = model_folder.filename().string();
  report.protocol = options.stride == 0 ? concat("llama.cpp, ctx ", options.context, protocol.bos_token ? ", BOS" : "")
                                        : concat("sliding, ctx ", options.context, ", stride ", options.stride);
  report.backend = backend_kind_name(options.backend);
  report.tokens_in_text = static_cast<int64_t>(tokens.size());
  report.perplexity = compute_perplexity(usable, vocab, protocol, window_logits, pool,
                                         saver || base ? visitor : ScoredWindowVisitor());
  if (options.progress) std::fprintf(stderr, "\n");
  if (saver) saver->close();
  if (divergence) {
    check(scored_index == base->count(), "--kld-base has ", base->count(), " tokens but this run scored ",
          scored_index, "; use the same text, --ctx and --stride");
    report.kl_divergence = divergence->to_json();
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.forward_seconds = forward_seconds;
  report.tokens_per_second = report.seconds > 0 ? tokens_through / report.seconds : 0;
  return report;
}

}  // namespace hlwq
