#include "convert/width_planning.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/interrupt.h"
#include "quant/width_allocation.h"

namespace hlwq {

namespace {

constexpr int kSmallestWidth = 2, kLargestWidth = 8;
// 256 rows give each tensor's relative error to about 1% (a 4096-wide matrix: a million weights in
// 8k blocks), so widths one bit apart (4x the error) are never confused; sampling keeps planning
// a small part of quantizing (7 widths x 256 rows against every row once).
constexpr int64_t kSampleRows = 256;

uint64_t stored_bits_at(int64_t rows, int64_t columns, const HlwqParams& params) {
  const HlwqRowLayout layout = hlwq_row_layout(columns, params);
  return static_cast<uint64_t>(rows) * (layout.code_bytes + 2 * static_cast<uint64_t>(layout.blocks)) * 8;
}

}  // namespace

std::vector<double> sampled_relative_errors(DType dtype, std::span<const std::byte> weights, int64_t rows,
                                            int64_t columns, HlwqParams params, std::span<const int> widths,
                                            int64_t sample_rows, ThreadPool& pool) {
  const int64_t taken = std::min(rows, sample_rows);
  const size_t row_bytes = static_cast<size_t>(columns) * dtype_size(dtype);
  std::vector<std::byte> sample(static_cast<size_t>(taken) * row_bytes);
  for (int64_t i = 0; i < taken; ++i) {
    const int64_t row = i * rows / taken;  // evenly spread, first row included
    std::memcpy(sample.data() + static_cast<size_t>(i) * row_bytes, weights.data() + static_cast<size_t>(row) * row_bytes,
                row_bytes);
  }
  std::vector<float> original(static_cast<size_t>(taken * columns));
  for (int64_t i = 0; i < taken; ++i) {
    convert_to_float(dtype, std::span<const std::byte>(sample).subspan(static_cast<size_t>(i) * row_bytes, row_bytes),
                     std::span<float>(original).subspan(static_cast<size_t>(i * columns), static_cast<size_t>(columns)));
  }
  double energy = 0;
  for (float value : original) energy += static_cast<double>(value) * value;
  std::vector<double> errors;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> norms;
  std::vector<float> decoded(original.size());
  for (int bits : widths) {
    params.bits = bits;
    const HlwqCodec codec(params, columns);
    codes.assign(codec.layout().code_bytes * static_cast<size_t>(taken), 0);
    norms.assign(static_cast<size_t>(codec.layout().blocks * taken), 0);
    codec.quantize_matrix(dtype, sample, taken, codes, norms, pool);
    codec.dequantize_matrix(codes, norms, taken, decoded, pool);
    double error = 0;
    for (size_t i = 0; i < original.size(); ++i) {
      const double difference = static_cast<double>(original[i]) - decoded[i];
      error += difference * difference;
    }
    errors.push_back(energy > 0 ? error / energy : 0.0);
  }
  return errors;
}

WidthPlan plan_code_widths(const ModelFolder& folder, std::span<const WidthPlanTensor> tensors,
                           double target_bits_per_weight, ThreadPool& pool) {
  std::vector<int> widths;
  for (int bits = kSmallestWidth; bits <= kLargestWidth; ++bits) widths.push_back(bits);
  std::vector<TensorWidthChoices> choices;
  WidthPlan plan;
  uint64_t smallest = 0, largest = 0;
  for (const WidthPlanTensor& tensor : tensors) {
    throw_if_interrupted();
    const TensorInfo& info = folder.info(tensor.name);
    check(info.shape.size() == 2, "--target-bpw: tensor ", tensor.name, " is not 2-D");
    const int64_t rows = info.shape[0], columns = info.shape[1];
    std::vector<double> relative;
    try {
      relative = sampled_relative_errors(info.dtype, folder.data(tensor.name), rows, columns, tensor.params, widths,
                                         kSampleRows, pool);
    } catch (const Error& error) {
      fail(error.what(), " in tensor ", tensor.name, ", ", folder.file(tensor.name).string());
    }
    folder.release(tensor.name);
    TensorWidthChoices choice{tensor.name, {}};
    for (size_t w = 0; w < widths.size(); ++w) {
      HlwqParams params = tensor.params;
      params.bits = widths[w];
      choice.settings.push_back(
          {widths[w], stored_bits_at(rows, columns, params), relative[w] * static_cast<double>(info.element_count())});
    }
    smallest += choice.settings.front().stored_bits;
    largest += choice.settings.back().stored_bits;
    plan.weights += info.element_count();
    choices.push_back(std::move(choice));
  }
  check(plan.weights > 0, "--target-bpw: no tensor to quantize");
  const double weights = static_cast<double>(plan.weights);
  const double lowest = static_cast<double>(smallest) / weights, highest = static_cast<double>(largest) / weights;
  check(target_bits_per_weight >= lowest && target_bits_per_weight <= highest, "--target-bpw ",
        target_bits_per_weight, " is outside what these tensors can store: ", lowest, " (2-bit codes) to ", highest,
        " (8-bit codes) bits per weight");
  const auto budget = static_cast<uint64_t>(target_bits_per_weight * weights);
  const std::vector<size_t> chosen = allocate_widths(choices, budget, plan.weights);
  for (size_t t = 0; t < choices.size(); ++t) {
    const WidthSetting& setting = choices[t].settings[chosen[t]];
    plan.bits[choices[t].name] = setting.bits;
    plan.stored_bits += setting.stored_bits;
  }
  return plan;
}

}  // namespace hlwq
