// A model folder seen as logical weights, whatever stores them: dense tensors, HLWQ codes,
// MLX affine groups or CompressedTensors INT4. Each logical tensor can be read back as floats,
// which is what export (re-quantize), inspect (error vs a reference) and tests build on.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "io/model_folder.h"
#include "quant/hlwq_codec.h"
#include "quant/trellis_codec.h"

namespace hlwq {

enum class WeightFormat { dense, hlwq, trellis, mlx_affine, ct_int4 };

struct LogicalTensor {
  std::string name;             // the name the unquantized model uses ("...q_proj.weight")
  std::vector<int64_t> shape;   // logical shape
  WeightFormat format = WeightFormat::dense;
  DType dtype = DType::F32;     // dense: storage dtype; quantized: dtype of the original weight
  int bits = 0;                 // quantized formats: bits per code
  int group_size = 0;           // HLWQ or trellis block, MLX or INT4 group
  int state_bits = 0;           // trellis: L, the trellis' state bits
  uint64_t stored_bytes = 0;    // all physical tensors that hold it
  std::vector<std::string> parts;  // physical tensor names

  uint64_t element_count() const;
  bool quantized() const { return format != WeightFormat::dense; }
  double bits_per_weight() const;
  // "BF16", "hlwq-q5-b128", "trellis-k4-l12-b64", "mlx-affine-q4-g64", "ct-int4-g128"
  std::string format_name() const;
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
  // Trellis format when the folder holds trellis codes ("codebook": "trellis-gaussian").
  const std::optional<TrellisFormat>& trellis_format() const { return trellis_format_; }
  // A codec for one trellis tensor (the model's format with the tensor's own bits and block), sharing
  // the model's one codebook.
  std::shared_ptr<const TrellisCodec> trellis_codec_of(const LogicalTensor& tensor) const;

  // The tensor's values as floats in row-major logical order (dequantized when quantized).
  std::vector<float> read_float(const LogicalTensor& tensor, ThreadPool& pool) const;
  // Gives the tensor's pages back to the OS after use.
  void release(const LogicalTensor& tensor) const;

 private:
  // Fills `tensor` from the trellis codes tensor `codes_name`, its gains and its config entry.
  void read_trellis_tensor(const std::string& codes_name, const nlohmann::json& quantized_tensors,
                           const std::string& where, LogicalTensor& tensor) const;

  ModelFolder folder_;
  std::vector<LogicalTensor> tensors_;
  std::optional<HlwqParams> hlwq_params_;
  std::optional<TrellisFormat> trellis_format_;
  std::shared_ptr<const std::vector<float>> trellis_codebook_;  // computed once at open
};

// HLWQ parameters as stored in config.json's quantization_config, and back.
nlohmann::json hlwq_params_to_json(const HlwqParams& params);
HlwqParams hlwq_params_from_json(const nlohmann::json& quantization_config, const std::string& where);

// The quantization_config of a trellis-coded folder (quant_method "hlwq", codebook
// "trellis-gaussian", trellis_state_bits), and back; `where` names config.json in errors.
inline constexpr const char* kTrellisCodebookName = "trellis-gaussian";
bool is_trellis_config(const nlohmann::json& quantization_config);
nlohmann::json trellis_format_to_json(const TrellisFormat& format);
TrellisFormat trellis_format_from_json(const nlohmann::json& quantization_config, const std::string& where);

}  // namespace hlwq
