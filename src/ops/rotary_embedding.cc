#include "ops/rotary_embedding.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace hlwq {

std::vector<double> rope_inverse_frequencies(int64_t head_dim, double theta, const RopeScaling& scaling) {
  std::vector<double> frequencies(head_dim / 2);
  for (size_t i = 0; i < frequencies.size(); ++i) {
    frequencies[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
  }
  switch (scaling.type) {
    case RopeScalingType::none: break;
    case RopeScalingType::linear:
      // Positions divided by the factor, i.e. every frequency divided by it.
      for (double& frequency : frequencies) frequency /= scaling.factor;
      break;
    case RopeScalingType::llama3: {
      // Long wavelengths (beyond the original window / low_freq_factor) are slowed by `factor`,
      // short ones (below window / high_freq_factor) kept, the band between blended linearly.
      const double window = static_cast<double>(scaling.original_max_position_embeddings);
      const double low_frequency_wavelength = window / scaling.low_freq_factor;
      const double high_frequency_wavelength = window / scaling.high_freq_factor;
      for (double& frequency : frequencies) {
        const double wavelength = 2 * std::numbers::pi / frequency;
        if (wavelength > low_frequency_wavelength) {
          frequency /= scaling.factor;
        } else if (wavelength >= high_frequency_wavelength) {
          const double smooth = (window / wavelength - scaling.low_freq_factor) /
                                (scaling.high_freq_factor - scaling.low_freq_factor);
          frequency = (1 - smooth) * frequency / scaling.factor + smooth * frequency;
        }
      }
      break;
    }
  }
  return frequencies;
}

RopeAngles rope_angles(int64_t position, std::span<const double> inverse_frequencies) {
  RopeAngles angles;
  angles.cosines.resize(inverse_frequencies.size());
  angles.sines.resize(inverse_frequencies.size());
  for (size_t i = 0; i < inverse_frequencies.size(); ++i) {
    const double angle = static_cast<double>(position) * inverse_frequencies[i];
    angles.cosines[i] = static_cast<float>(std::cos(angle));
    angles.sines[i] = static_cast<float>(std::sin(angle));
  }
  return angles;
}

void apply_rope(std::span<float> x, int64_t head_dim, const RopeAngles& angles) {
  // Fewer angles than head_dim / 2 rotate only the head's first 2 x angles values (partial rotary).
  const auto half = static_cast<int64_t>(angles.cosines.size());
  check(half > 0 && 2 * half <= head_dim && angles.sines.size() == angles.cosines.size(),
        "internal: apply_rope with ", angles.cosines.size(), " angles for head_dim ", head_dim);
  for (int64_t i = 0; i < half; ++i) {
    const float cosine = angles.cosines[i];
    const float sine = angles.sines[i];
    for (size_t head = 0; head + head_dim <= x.size(); head += head_dim) {
      const float first = x[head + i];
      const float second = x[head + i + half];
      x[head + i] = first * cosine - second * sine;
      x[head + i + half] = second * cosine + first * sine;
    }
  }
}

void apply_rope(std::span<float> x, int64_t head_dim, int64_t position, std::span<const double> inverse_frequencies) {
  check(static_cast<int64_t>(inverse_frequencies.size()) >= head_dim / 2, "internal: apply_rope with ",
        inverse_frequencies.size(), " frequencies for head_dim ", head_dim);
  apply_rope(x, head_dim, rope_angles(position, inverse_frequencies.first(head_dim / 2)));
}

}  // namespace hlwq
