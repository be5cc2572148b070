#include "convert/inspect_model.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "convert/model_weights.h"
#include "convert/tensor_selection.h"
#include "core/error.h"
#include "core/interrupt.h"

namespace hlwq {

using nlohmann::json;

json ModelReport::to_json() const {
  const auto optional_number = [](const std::optional<double>& value) { return value ? json(*value) : json(nullptr); };
  json tensor_list = json::array();
  for (const TensorReport& tensor : tensors) {
    tensor_list.push_back({{"name", tensor.name},
                           {"shape", tensor.shape},
                           {"format", tensor.format},
                           {"quantized", tensor.quantized},
                           {"bits_per_weight", tensor.bits_per_weight},
                           {"rel_mse", optional_number(tensor.relative_mse)},
                           {"sqnr_db", optional_number(tensor.sqnr_db)},
                           {"max_abs_error", optional_number(tensor.max_abs_error)}});
  }
  return {{"bits_per_weight", bits_per_weight},
          {"summary_over", summary_over},
          {"bits_per_weight_all", bits_per_weight_all},
          {"stored_bytes", stored_bytes},
          {"rel_mse", optional_number(relative_mse)},
          {"sqnr_db", optional_number(sqnr_db)},
          {"mean_sqnr_db", optional_number(mean_sqnr_db)},
          {"tensors", tensor_list}};
}

std::string ModelReport::to_table() const {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-52s %-16s %-20s %7s %10s %8s\n", "tensor", "shape", "format", "bpw",
                "rel_mse", "sqnr_dB");
  out << line;
  for (const TensorReport& tensor : tensors) {
    std::string shape;
    for (size_t i = 0; i < tensor.shape.size(); ++i) {
      if (i > 0) shape.push_back('x');
      shape.append(std::to_string(tensor.shape[i]));
    }
    std::string mse = "-";
    if (tensor.relative_mse) {
      char number[32];
      std::snprintf(number, sizeof number, "%.3e", *tensor.relative_mse);
      mse = number;
    }
    std::string sqnr = "-";
    if (tensor.sqnr_db) {
      char number[32];
      std::snprintf(number, sizeof number, "%.2f", *tensor.sqnr_db);
      sqnr = std::isinf(*tensor.sqnr_db) ? "inf" : number;
    }
    std::snprintf(line, sizeof line, "%-52s %-16s %-20s %7.3f %10s %8s\n", tensor.name.c_str(), shape.c_str(),
                  tensor.format.c_str(), tensor.bits_per_weight, mse.c_str(), sqnr.c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "total: %.1f MB stored, %.4f bits per weight (%s), %.4f (all)\n",
                stored_bytes / 1e6, bits_per_weight, summary_over.c_str(), bits_per_weight_all);
  out << line;
  if (relative_mse) {
    std::snprintf(line, sizeof line,
                  "vs reference: rel_mse %.4e, SQNR %.2f dB (element-weighted over %s), "
                  "mean of per-tensor SQNR %.2f dB\n",
                  *relative_mse, *sqnr_db, summary_over.c_str(), mean_sqnr_db.value_or(NAN));
    out << line;
  }
  return out.str();
}

ModelReport inspect_model(const std::filesystem::path& model_path,
                          const std::optional<std::filesystem::path>& reference_path, int threads) {
  const ModelWeights model = ModelWeights::open(model_path);
  std::optional<ModelWeights> reference;
  if (reference_path) reference = ModelWeights::open(*reference_path);
  ThreadPool pool(threads);

  ModelReport report;
  uint64_t quantized_elements = 0, all_elements = 0, quantized_bytes = 0;
  double weighted_mse = 0, weighted_db = 0;
  uint64_t compared_elements = 0;
  const bool any_quantized = [&] {
    for (const LogicalTensor& tensor : model.tensors()) {
      if (tensor.quantized()) return true;
    }
    return false;
  }();
  // A model with no quantized tensor (a dense or dequantized export) is summarized over the
  // tensors `hlwq quantize` would quantize by default, so its numbers compare with a quantized
  // model's.
  const TensorSelector default_selection{TensorSelection{}};
  const auto counts_in_summary = [&](const LogicalTensor& tensor) {
    return any_quantized ? tensor.quantized() : default_selection.selects(tensor.name, tensor.dtype, tensor.shape);
  };
  if (!any_quantized) report.summary_over = "linear weights";
  for (const LogicalTensor& tensor : model.tensors()) {
    throw_if_interrupted();
    TensorReport row;
    row.name = tensor.name;
    row.shape = tensor.shape;
    row.format = tensor.format_name();
    row.quantized = tensor.quantized();
    row.elements = tensor.element_count();
    row.bits_per_weight = tensor.bits_per_weight();
    report.stored_bytes += tensor.stored_bytes;
    all_elements += row.elements;
    if (counts_in_summary(tensor)) {
      quantized_elements += row.elements;
      quantized_bytes += tensor.stored_bytes;
    }
    const bool comparable = tensor.quantized() || is_float(tensor.dtype);
    if (reference && comparable) {
      const LogicalTensor* base = reference->find(tensor.name);
      check(base != nullptr, "reference model has no tensor ", tensor.name, ", ", reference_path->string());
      check(base->shape == tensor.shape, "shape of ", tensor.name, " differs from the reference, ",
            reference_path->string());
      const std::vector<float> values = model.read_float(tensor, pool);
      const std::vector<float> expected = reference->read_float(*base, pool);
      double error = 0, energy = 0, max_error = 0;
      for (size_t i = 0; i < values.size(); ++i) {
        const double difference = static_cast<double>(values[i]) - expected[i];
        error += difference * difference;
        energy += static_cast<double>(expected[i]) * expected[i];
        max_error = std::max(max_error, std::fabs(difference));
      }
      row.relative_mse = energy > 0 ? error / energy : (error > 0 ? INFINITY : 0.0);
      row.sqnr_db = -10.0 * std::log10(*row.relative_mse);
      row.max_abs_error = max_error;
      if (counts_in_summary(tensor)) {
        weighted_mse += *row.relative_mse * row.elements;
        if (std::isfinite(*row.sqnr_db)) {
          weighted_db += *row.sqnr_db * row.elements;
          compared_elements += row.elements;
        }
      }
      model.release(tensor);
      reference->release(*base);
    }
    report.tensors.push_back(std::move(row));
  }
  report.bits_per_weight = quantized_elements ? 8.0 * quantized_bytes / quantized_elements : 0.0;
  report.bits_per_weight_all = all_elements ? 8.0 * report.stored_bytes / all_elements : 0.0;
  if (reference && quantized_elements > 0) {
    report.relative_mse = weighted_mse / quantized_elements;
    report.sqnr_db = -10.0 * std::log10(*report.relative_mse);
    if (compared_elements > 0) report.mean_sqnr_db = weighted_db / compared_elements;
  }
  return report;
}

}  // namespace hlwq
