// `hlwq bench`: prefill and decode speed of a model folder (or of random weights of a real
// architecture's shape, made in memory in the requested format) on a backend, with the device's
// measured memory-read bandwidth and the fraction of the decode roofline reached: batch-1 decode
// reads every weight once per token, so tokens/s <= bandwidth / bytes per token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "ops/backend.h"

namespace hlwq {

struct BenchOptions {
  int64_t prompt_tokens = 512;
  int64_t generated_tokens = 128;
  int threads = 0;
  int repetitions = 1;
  BackendKind backend = BackendKind::cpu;
  int64_t prefill_chunk = 2048;  // the longest pass of the prefill (scratch grows with it)
};

struct BenchReport {
  std::string model;
  std::string device;  // the backend's description
  double read_bandwidth_bytes_per_second = 0;
  uint64_t decode_bytes_per_token = 0;
  double prefill_tokens_per_second = 0;
  double decode_tokens_per_second = 0;
  double decode_roofline_tokens_per_second = 0;
  double decode_roofline_fraction = 0;
  int threads = 0;
  BackendMemory memory;  // weights, KV cache, scratch held on the device; peak where measured
  nlohmann::json to_json() const;
  std::string to_text() const;
};

BenchReport bench_model(const std::filesystem::path& folder, const BenchOptions& options);
BenchReport bench_loaded_model(const Model& model, const std::string& name, const BenchOptions& options);

// The config of a named real shape ("smollm2-135m", "qwen3-0.6b", "llama3-1b", "llama3-8b",
// "qwen3-8b"); throws listing them for another name.
ModelConfig synthetic_model_config(const std::string& shape);

// The format a --format name stands for: "bf16", "hlwq-q2" to "hlwq-q8", "mlx4" (MLX 4-bit g64),
// "int4" (CompressedTensors INT4 g128); throws listing them for another name.
RandomLinearFormat synthetic_format(const std::string& format);

// Writes a dense BF16 model folder of a named shape with random N(0, 0.02) weights into `work` and
// converts it to `format` (through quantize or export, as a user would); returns the folder.
// `hlwq bench --save` uses it to make large inputs for quantize (the weights pass through disk).
std::filesystem::path write_synthetic_model(const std::string& shape, const std::string& format,
                                            const std::filesystem::path& work, int threads);

}  // namespace hlwq
