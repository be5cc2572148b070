// Builds the grid of CodeSearchGrid from a codebook's thresholds, with the bounds that make the
// lookup exact despite rounding.
#include "quant/code_search_grid.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace hlwq {
namespace {

// Number of thresholds strictly below `value`.
int32_t count_below(const std::vector<float>& thresholds, double value) {
  return static_cast<int32_t>(
      std::lower_bound(thresholds.begin(), thresholds.end(), value,
                       [](float threshold, double bound) { return threshold < bound; }) -
      thresholds.begin());
}

}  // namespace

CodeSearchGrid make_code_search_grid(const Codebook& codebook) {
  const std::vector<float>& thresholds = codebook.boundaries;
  check(codebook.centroids.size() == thresholds.size() + 1 && !thresholds.empty(),
        "internal: codebook needs 2^bits centroids and 2^bits - 1 thresholds");
  double range = 0;
  double smallest_gap = std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < thresholds.size(); ++k) {
    range = std::max(range, std::abs(static_cast<double>(thresholds[k])));
    if (k > 0) smallest_gap = std::min(smallest_gap, static_cast<double>(thresholds[k]) - thresholds[k - 1]);
  }
  range = range * 1.01 + 1e-3;  // every threshold lies inside the grid, away from its ends

  CodeSearchGrid grid;
  grid.cells = 16;
  while (grid.cells < 16384 && 2.0 * range / grid.cells > 0.5 * smallest_gap) grid.cells *= 2;
  grid.low = static_cast<float>(-range);
  grid.inverse_cell_width = static_cast<float>(grid.cells / (2.0 * range));
  // The cells as the float arithmetic sees them: edge i = low + i / inverse_cell_width.
  const double low = grid.low, cell_width = 1.0 / static_cast<double>(grid.inverse_cell_width);
  const double margin = cell_width / 64;
  grid.first_code.resize(static_cast<size_t>(grid.cells));
  for (int32_t cell = 0; cell < grid.cells; ++cell) {
    const double lower_edge = low + cell * cell_width;
    const double upper_edge = cell + 1 == grid.cells ? std::numeric_limits<double>::infinity()
                                                     : lower_edge + cell_width + margin;
    // Cell 0 also receives every z below the grid, and the last cell every z above it.
    const int32_t first = cell == 0 ? 0 : count_below(thresholds, lower_edge - margin);
    grid.first_code[static_cast<size_t>(cell)] = first;
    grid.refinement_steps = std::max(grid.refinement_steps, count_below(thresholds, upper_edge) - first);
  }
  grid.thresholds = thresholds;
  grid.thresholds.push_back(std::numeric_limits<float>::infinity());
  return grid;
}

}  // namespace hlwq
