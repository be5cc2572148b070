// `hlwq export`: any model folder (dense, HLWQ, MLX, CompressedTensors) -> a folder other
// engines load: dequantized BF16 (transformers), MLX affine (mlx_lm), or CompressedTensors
// pack-quantized INT4 (vLLM), or mlx-lm's prism Hadamard 2-bit pack of a Qwen3.5 model
// (convert/prism_hadamard_export.h). Streams one logical tensor at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"

namespace hlwq {

enum class ExportTarget { bf16, mlx, ct_int4, prism_hadamard };

struct ExportOptions {
  ExportTarget target = ExportTarget::bf16;
  int bits = 4;                    // mlx only
  std::optional<int> group_size;   // mlx default 64, ct-int4 default 128
  std::optional<DType> dtype;      // float dtype written; nullopt: BF16 (bf16 target: "original" keeps each tensor's)
  bool keep_original_dtype = false;
  std::optional<int> block;        // prism-hadamard: one rotation block for every module (default per module)
  std::optional<uint64_t> sign_seed;  // prism-hadamard: first sign seed (default kPrismSignSeed)
  int threads = 0;
  bool progress = false;
  uint64_t max_shard_bytes = uint64_t{5} << 30;
};

struct ExportSummary {
  size_t tensors = 0;
  size_t quantized_tensors = 0;
  std::vector<std::string> left_unquantized;  // weights the format could not take (group size)
  size_t dropped_tensors = 0;                 // prism-hadamard: vision tower, mtp head, tied lm_head
  std::vector<std::string> unrotated;         // prism-hadamard: packed with block 0 (no block divides the width)
  uint64_t bytes_out = 0;
  double seconds = 0;
  nlohmann::json to_json() const;
};

ExportSummary export_model(const std::filesystem::path& input, const std::filesystem::path& output,
                           const ExportOptions& options);

// The quantization_config that vLLM's compressed-tensors loader expects for W4A16 symmetric INT4.
nlohmann::json compressed_tensors_config(int group_size, const std::vector<std::string>& ignored_modules);

}  // namespace hlwq
