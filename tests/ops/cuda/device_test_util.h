// Helpers the GPU tests share: moving float vectors to and from the device, and the one relative
// error they bound. CUDA builds only.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cuda/device_buffer.h"

namespace hlwq {

inline cuda::DeviceBuffer on_device(const std::vector<float>& values) {
  cuda::DeviceBuffer buffer(values.size());
  buffer.upload(values.data(), values.size());
  return buffer;
}

inline std::vector<float> on_host(const cuda::DeviceBuffer& buffer) {
  std::vector<float> values(buffer.size());
  buffer.download(values.data(), values.size());
  return values;
}

// max |a - b| / max |b| (one bound per test, independent of the values' scale); infinity when a
// has a non-finite value, so a kernel that leaves NaNs cannot pass.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double largest_difference = 0, largest = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    largest_difference = std::max(largest_difference, std::fabs(static_cast<double>(a[i]) - b[i]));
    largest = std::max(largest, std::fabs(static_cast<double>(b[i])));
  }
  return largest > 0 ? largest_difference / largest : largest_difference;
}

}  // namespace hlwq
