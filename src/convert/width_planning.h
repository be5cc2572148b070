// `hlwq quantize --target-bpw X`: which code width each tensor gets so the quantized tensors store
// X bits per weight on average, calibration-free. Each tensor's error at every width 2..8 is
// measured on a sample of its rows (HLWQ quantized and dequantized, no data but the weights), and
// allocate_widths (quant/width_allocation.h) spends the budget where it removes the most error.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "io/model_folder.h"
#include "quant/hlwq_codec.h"

namespace hlwq {

// Squared error over squared weights (the inverse of the weight SQNR) that HLWQ with `params`
// leaves on `sample_rows` rows spread evenly over the matrix (all rows when it has fewer), for
// each of `widths` (params.bits is replaced by each). The sample is the same for every width.
std::vector<double> sampled_relative_errors(DType dtype, std::span<const std::byte> weights, int64_t rows,
                                            int64_t columns, HlwqParams params, std::span<const int> widths,
                                            int64_t sample_rows, ThreadPool& pool);

struct WidthPlanTensor {
  std::string name;
  HlwqParams params;  // the tensor's block and the model's options; bits ignored
};

struct WidthPlan {
  std::map<std::string, int> bits;  // per tensor
  uint64_t weights = 0;
  uint64_t stored_bits = 0;         // codes and gains of the planned tensors
  double bits_per_weight() const { return weights ? static_cast<double>(stored_bits) / static_cast<double>(weights) : 0; }
};

// Widths for `tensors` of `folder` so their codes and gains take at most target_bits_per_weight
// on average. Each tensor's error counts in proportion to its weights (the same relative error on
// a larger matrix costs more). Throws hlwq::Error when the target is below 2-bit codes' size or
// above 8-bit codes' (a clear message with the reachable range).
WidthPlan plan_code_widths(const ModelFolder& folder, std::span<const WidthPlanTensor> tensors,
                           double target_bits_per_weight, ThreadPool& pool);

}  // namespace hlwq
