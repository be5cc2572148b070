// A model folder seen as logical weights, whatever stores them: dense tensors, HLWQ codes,
// MLX affine groups or CompressedTensors INT4. Each logical tensor can be read back as floats,
// which is what export (re-quantize), inspect (error vs a reference) and tests build on.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "io/model_folder.h"
#include "quant/hlwq_codec.h"

namespace hlwq {

enum class WeightFormat { dense, hlwq, mlx_affine, ct_int4 };

struct LogicalTensor {
  std::string name;             // the name the unquantized model uses ("...q_proj.weight")
  std::vector<int64_t> shape;   // logical shape
  WeightFormat format = WeightFormat::dense;
  DType dtype = DType::F32;     // dense: storage dtype; quantized: dtype of the original weight
  int bits = 0;                 // quantized formats: bits per code
  int group_size = 0;           // HLWQ block, MLX or INT4 group
  uint64_t stored_bytes = 0;    // all physical tensors that hold it
  std::vector<std::string> parts;  // physical tensor names

  uint64_t element_count() const;
  bool quantized() const { return format != WeightFormat::dense; }
  double bits_per_weight() const;
  std::string format_name() const;  // "BF16", "hlwq-q5-b128", "mlx-affine-q4-g64", "ct-int4-g128"
};

class ModelWeights {
 public:
  static ModelWeights open(const std::filesystem::path& folder);

  const ModelFolder& folder() const { return folder_; }
  const std::vector<LogicalTensor>& tensors() const { return tensors_; }
  const LogicalTensor* find(std::string_view name) const;
  // HLWQ parameters when the folder is an HLWQ model.
  const std::optional<HlwqParams>& hlwq_params() const { return hlwq_params_; }
  // The parameters one HLWQ tensor was coded with: the model's, with the tensor's own bits and block.
  HlwqParams hlwq_params_of(const LogicalTensor& tensor) const;

  // The tensor's values as floats in row-major logical order (dequantized when quantized).
  std::vector<float> read_float(const LogicalTensor& tensor, ThreadPool& pool) const;
  // Gives the tensor's pages back to the OS after use.
  void release(const LogicalTensor& tensor) const;

 private:
  ModelFolder folder_;
  std::vector<LogicalTensor> tensors_;
  std::optional<HlwqParams> hlwq_params_;
};

// HLWQ parameters as stored in config.json's quantization_config, and back.
nlohmann::json hlwq_params_to_json(const HlwqParams& params);
HlwqParams hlwq_params_from_json(const nlohmann::json& quantization_config, const std::string& where);

}  // namespace hlwq
