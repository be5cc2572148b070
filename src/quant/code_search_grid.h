// Fast nearest-centroid search for the quantizer's inner loop: one table lookup on a uniform grid
// over z gives a lower bound of the code, and a fixed, small number of threshold comparisons
// (usually one) finish it. The result always equals nearest_code(); SIMD kernels gather from it.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/lloyd_max.h"

namespace hlwq {

struct CodeSearchGrid {
  float low = 0;                 // left edge of cell 0 (below every threshold)
  float inverse_cell_width = 0;  // cells per unit of z
  int32_t cells = 0;             // a power of two; cell = clamp(floor((z - low) * inverse_cell_width))
  int refinement_steps = 0;      // comparisons "code += z > thresholds[code]" after the lookup
  std::vector<int32_t> first_code;  // per cell: nearest code of the cell's smallest z, or lower
  std::vector<float> thresholds;    // codebook.boundaries, then +inf (2^bits entries)
};

// Cells are at most half the smallest threshold gap (at most 16384 cells), so one comparison
// usually finishes; the table sizes itself so that float rounding in the cell index (at most
// ~3e-4 cell) can never skip a threshold (it keeps a margin of 1/64 cell).
CodeSearchGrid make_code_search_grid(const Codebook& codebook);

// Scalar form of the search; equal to nearest_code(codebook, z) for every float z (NaN gives 0).
inline uint8_t grid_nearest_code(const CodeSearchGrid& grid, float z) {
  float position = (z - grid.low) * grid.inverse_cell_width;
  const float last_cell = static_cast<float>(grid.cells - 1);
  if (!(position >= 0.0f)) position = 0.0f;
  if (position > last_cell) position = last_cell;
  int32_t code = grid.first_code[static_cast<size_t>(position)];
  for (int step = 0; step < grid.refinement_steps; ++step) {
    code += z > grid.thresholds[static_cast<size_t>(code)] ? 1 : 0;
  }
  return static_cast<uint8_t>(code);
}

}  // namespace hlwq
