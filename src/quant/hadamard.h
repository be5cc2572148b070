// Walsh-Hadamard transform in Sylvester order: the rotation that spreads each block of weights
// over all coordinates before the Lloyd-Max code (step 3 of the method).
#pragma once

#include <cstddef>
#include <span>

namespace hlwq {

inline bool is_power_of_two(size_t value) { return value != 0 && (value & (value - 1)) == 0; }

// In place, orthonormal: H_1 = [1], H_2n = 1/sqrt(2) [[H, H], [H, -H]]; symmetric and self-inverse.
// values.size() must be a power of two (throws hlwq::Error otherwise). log2(n) butterfly stages,
// SIMD with Highway's dynamic dispatch; the result is bit-identical on every SIMD target.
void walsh_hadamard_transform(std::span<float> values);

// The plain O(n^2) product with the +-1/sqrt(n) matrix, accumulated in double; for tests.
void walsh_hadamard_transform_reference(std::span<const float> input, std::span<float> output);

}  // namespace hlwq
