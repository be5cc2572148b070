// `hlwq bench`: prefill and decode speed of a model folder (or a synthetic model of a real
// architecture's shape, written to a temporary folder in the requested format), with the
// machine's measured memory-read bandwidth and the fraction of the decode roofline reached:
// batch-1 decode reads every weight once per token, so tokens/s <= bandwidth / bytes per token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace hlwq {

struct BenchOptions {
  int64_t prompt_tokens = 512;
  int64_t generated_tokens = 128;
  int threads = 0;
  int repetitions = 1;
};

struct BenchReport {
  std::string model;
  double read_bandwidth_bytes_per_second = 0;
  uint64_t decode_bytes_per_token = 0;
  double prefill_tokens_per_second = 0;
  double decode_tokens_per_second = 0;
  double decode_roofline_tokens_per_second = 0;
  double decode_roofline_fraction = 0;
  int threads = 0;
  nlohmann::json to_json() const;
  std::string to_text() const;
};

// Best of a few timed parallel reads of a buffer much larger than the caches.
double measure_read_bandwidth(int threads);

BenchReport bench_model(const std::filesystem::path& folder, const BenchOptions& options);

// Writes a dense BF16 model folder with random weights of a named shape ("llama3-1b", "qwen3-8b",
// "smollm2-135m", "qwen3-0.6b") and converts it to `format` ("bf16", "hlwq-q2" to "hlwq-q8",
// "mlx4", "int4"); returns the folder to benchmark (inside `work`).
std::filesystem::path make_synthetic_model(const std::string& shape, const std::string& format,
                                           const std::filesystem::path& work, int threads);

}  // namespace hlwq
