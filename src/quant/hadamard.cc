// Fast Walsh-Hadamard transform (dynamic SIMD dispatch) and its plain matrix reference.
#include "quant/hadamard.h"

#include <bit>
#include <cmath>
#include <vector>

#include "core/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/hadamard.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "quant/hadamard-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

void OrthonormalHadamard(float* HWY_RESTRICT values, size_t size) {
  const hn::ScalableTag<float> d;
  UnnormalizedHadamard(d, values, size);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(size)));
  for (size_t i = 0; i < size; ++i) values[i] *= scale;
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(OrthonormalHadamard);

void walsh_hadamard_transform(std::span<float> values) {
  check(is_power_of_two(values.size()), "Walsh-Hadamard transform size must be a power of two, got ",
        values.size());
  HWY_DYNAMIC_DISPATCH(OrthonormalHadamard)(values.data(), values.size());
}

void walsh_hadamard_transform_reference(std::span<const float> input, std::span<float> output) {
  const size_t size = input.size();
  check(is_power_of_two(size), "Walsh-Hadamard transform size must be a power of two, got ", size);
  check(output.size() == size, "internal: Walsh-Hadamard output has ", output.size(), " values, input ", size);
  // Entry (i, j) of the Sylvester matrix is (-1)^popcount(i & j) / sqrt(n).
  const double scale = 1.0 / std::sqrt(static_cast<double>(size));
  std::vector<double> result(size);
  for (size_t i = 0; i < size; ++i) {
    double sum = 0;
    for (size_t j = 0; j < size; ++j) {
      sum += (std::popcount(i & j) % 2 == 0) ? input[j] : -static_cast<double>(input[j]);
    }
    result[i] = sum * scale;
  }
  for (size_t i = 0; i < size; ++i) output[i] = static_cast<float>(result[i]);
}

}  // namespace hlwq
#endif  // HWY_ONCE
