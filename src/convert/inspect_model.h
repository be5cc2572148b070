// `hlwq inspect`: every logical tensor's shape, storage format and bits per weight, and with a
// reference model its relative MSE and SQNR (a DistortionStats-style report per tensor).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlwq {

struct TensorReport {
  std::string name;
  std::vector<int64_t> shape;
  std::string format;
  bool quantized = false;
  uint64_t elements = 0;
  double bits_per_weight = 0;
  std::optional<double> relative_mse;  // sum (w - ref)^2 / sum ref^2, with a reference
  std::optional<double> sqnr_db;       // -10 log10(relative_mse)
  std::optional<double> max_abs_error;
};

struct ModelReport {
  std::vector<TensorReport> tensors;
  double bits_per_weight = 0;      // over the quantized tensors (if none is: those the default
                                   // quantizer selection would quantize)
  double bits_per_weight_all = 0;  // every tensor counted
  uint64_t stored_bytes = 0;
  std::string summary_over = "quantized tensors";  // which tensors the model-wide numbers cover
  std::optional<double> relative_mse;  // element-weighted mean of relative MSE over quantized tensors
  std::optional<double> sqnr_db;       // -10 log10 of that mean
  std::optional<double> mean_sqnr_db;  // element-weighted mean of per-tensor SQNR in dB

  nlohmann::json to_json() const;
  std::string to_table() const;
};

ModelReport inspect_model(const std::filesystem::path& model,
                          const std::optional<std::filesystem::path>& reference, int threads);

}  // namespace hlwq
