// Reads tests/fixtures/engine/: a tiny model folder with the prompt ids and transformers' logits
// for every position (scripts/make_engine_fixtures.py writes them).
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/gguf_import.h"
#include "core/error.h"
#include "engine/model_runner.h"
#include "ops/cpu/cpu_backend.h"

namespace hlwq {

inline std::filesystem::path engine_fixture(const std::string& name) {
  return std::filesystem::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "engine" / name;
}

struct ReferenceLogits {
  std::vector<int32_t> ids;
  int64_t vocab = 0;
  std::vector<float> logits;  // ids.size() x vocab
};

inline ReferenceLogits read_reference_logits(const std::filesystem::path& folder) {
  ReferenceLogits reference;
  std::ifstream ids_file(folder / "ids.json");
  const nlohmann::json ids = nlohmann::json::parse(ids_file);
  reference.ids = ids.at("ids").get<std::vector<int32_t>>();
  reference.vocab = ids.at("vocab").get<int64_t>();
  reference.logits.resize(reference.ids.size() * reference.vocab);
  std::ifstream logits_file(folder / "logits.f32", std::ios::binary);
  logits_file.read(reinterpret_cast<char*>(reference.logits.data()),
                   static_cast<std::streamsize>(reference.logits.size() * sizeof(float)));
  check(logits_file.gcount() == static_cast<std::streamsize>(reference.logits.size() * sizeof(float)),
        "short logits file in ", folder.string());
  return reference;
}

inline double max_abs_difference(std::span<const float> a, std::span<const float> b) {
  double largest = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return largest;
}

// A real GGUF imported as F32 into `folder` (hlwq import --dtype f32) and loaded.
inline Model import_f32_and_load(const std::filesystem::path& gguf, const std::filesystem::path& folder,
                                 ThreadPool& pool) {
  ImportOptions options;
  options.dtype = DType::F32;
  options.threads = 2;
  import_gguf(gguf, folder, options);
  return Model::load(folder, pool);
}

// One sequence of a model on the CPU backend, for tests: passes of tokens at given positions.
class CpuRun {
 public:
  CpuRun(const Model& model, int64_t context, DType cache_dtype, ThreadPool& pool)
      : backend_(pool), runner_(model, backend_, RunnerOptions{context, 1, 0, 0, cache_dtype, true}) {}
  std::vector<float> forward(std::span<const int32_t> tokens, int64_t start, LogitsFor which) {
    return runner_.forward(0, tokens, start, which);
  }
  std::vector<float> forward(std::span<const int32_t> tokens, int64_t start, LogitsFrom which) {
    std::vector<float> logits;
    runner_.forward(0, tokens, start, which, logits);
    return logits;
  }
  ModelRunner& runner() { return runner_; }

 private:
  CpuBackend backend_;
  ModelRunner runner_;
};

// Prefill of the whole prompt, logits for every position, F32 KV cache.
inline std::vector<float> prefill_logits(const Model& model, std::span<const int32_t> ids, ThreadPool& pool,
                                         DType cache_dtype = DType::F32) {
  CpuRun run(model, 64, cache_dtype, pool);
  return run.forward(ids, 0, LogitsFor::all_positions);
}

}  // namespace hlwq
