// Seeded random +-1 per input column (the diagonal of the randomized Hadamard rotation): spreads a
// structured block (constant, one-hot) over all codes instead of one clipped coordinate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hlwq {

// Sign of column i is bit 63 of splitmix64 output i+1 for this seed (1 -> -1.0f, 0 -> +1.0f);
// integer-only, so identical on every platform. docs/FORMAT.md has the exact generator.
std::vector<float> random_signs(uint64_t seed, size_t count);

}  // namespace hlwq
