// Fast nearest-centroid search for the quantizer's inner loop: one lookup in a uniform grid over z
// gives the code of the cell's left end and the single threshold that can lie inside the cell;
// one comparison finishes. The result always equals nearest_code(); SIMD kernels gather the
// 64-bit cell entries (one load per weight).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "quant/lloyd_max.h"

namespace hlwq {

struct CodeSearchGrid {
  float low = 0;                 // left edge of cell 0 (below every threshold)
  float inverse_cell_width = 0;  // cells per unit of z
  int32_t cells = 0;             // a power of two; cell = clamp(floor((z - low) * inverse_cell_width))
  // Per cell: high 32 bits = the nearest code of every z at or below the cell (and a little
  // beyond, see make_code_search_grid); low 32 bits = the float bits of the next threshold (+inf
  // after the last). The code of z in the cell is high + (z > threshold).
  std::vector<uint64_t> cell_entries;
};

// Cells are at most half the smallest threshold gap (so at most one threshold per cell, even with
// the 1/64-cell margins that absorb the float rounding of the cell index, at most ~1e-3 cell).
CodeSearchGrid make_code_search_grid(const Codebook& codebook);

inline uint64_t code_search_entry(int32_t first_code, float threshold) {
  uint32_t threshold_bits;
  std::memcpy(&threshold_bits, &threshold, sizeof threshold_bits);
  return static_cast<uint64_t>(static_cast<uint32_t>(first_code)) << 32 | threshold_bits;
}

// Scalar form of the search; equal to nearest_code(codebook, z) for every float z (NaN gives 0).
inline uint8_t grid_nearest_code(const CodeSearchGrid& grid, float z) {
  float position = (z - grid.low) * grid.inverse_cell_width;
  const float last_cell = static_cast<float>(grid.cells - 1);
  if (!(position >= 0.0f)) position = 0.0f;
  if (position > last_cell) position = last_cell;
  const uint64_t entry = grid.cell_entries[static_cast<size_t>(position)];
  const uint32_t threshold_bits = static_cast<uint32_t>(entry);
  float threshold;
  std::memcpy(&threshold, &threshold_bits, sizeof threshold);
  return static_cast<uint8_t>((entry >> 32) + (z > threshold ? 1 : 0));
}

}  // namespace hlwq
