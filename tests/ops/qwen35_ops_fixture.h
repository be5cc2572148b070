// Reads tests/fixtures/qwen35/ops.safetensors: inputs and transformers' outputs of the Qwen3.5 layer
// math (scripts/make_qwen35_fixtures.py writes it, every tensor float32).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace hlwq {

inline std::vector<float> qwen35_ops_tensor(const std::string& name) {
  static const SafetensorsFile file = SafetensorsFile::open(std::filesystem::path(HLWQ_SOURCE_DIR) / "tests" /
                                                            "fixtures" / "qwen35" / "ops.safetensors");
  const TensorInfo* tensor = file.find(name);
  check(tensor != nullptr && tensor->dtype == DType::F32, "no float32 tensor ", name, " in ops.safetensors");
  std::vector<float> values(tensor->element_count());
  const std::span<const std::byte> bytes = file.data(*tensor);
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

// max |a - b| (infinity when the sizes differ).
inline double largest_difference(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return INFINITY;
  double largest = 0;
  for (size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::fabs(double{a[i]} - double{b[i]}));
  return largest;
}

inline double largest_magnitude(std::span<const float> a) {
  double largest = 0;
  for (float v : a) largest = std::max(largest, std::fabs(double{v}));
  return largest;
}

}  // namespace hlwq
