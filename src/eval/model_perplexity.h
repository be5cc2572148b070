// `hlwq ppl`: a model folder's perplexity on a text file with either protocol, optionally saving
// its next-token distributions (--save-logits) or comparing them with a saved reference
// (--kld-base: KL-divergence statistics).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "eval/perplexity.h"
#include "ops/backend.h"

namespace hlwq {

struct ModelPerplexityOptions {
  int64_t context = 512;
  int64_t stride = 0;  // 0: llama.cpp protocol
  int threads = 0;
  int64_t max_windows = 0;  // 0: the whole file
  std::optional<std::filesystem::path> save_logits;
  std::optional<std::filesystem::path> kld_base;
  DType kv_cache_dtype = DType::F16;
  bool progress = false;
  BackendKind backend = BackendKind::cpu;  // where the model runs, on its stored formats
};

struct ModelPerplexityReport {
  std::string model;
  std::string protocol;  // "llama.cpp (ctx 512)" or "sliding (ctx 512, stride 256)"
  std::string backend;   // "cpu" or "cuda"
  int64_t tokens_in_text = 0;
  PerplexityResult perplexity;
  std::optional<nlohmann::json> kl_divergence;
  double seconds = 0;
  double forward_seconds = 0;  // of `seconds`, in the model's passes (the rest: loading, tokenizing, statistics)
  double tokens_per_second = 0;  // tokens through the model (windows x context) per second

  nlohmann::json to_json() const;
  std::string to_text() const;
};

ModelPerplexityReport model_perplexity(const std::filesystem::path& model_folder,
                                       const std::filesystem::path& text_file,
                                       const ModelPerplexityOptions& options);

}  // namespace hlwq
