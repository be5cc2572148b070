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

// Fills the entries for `cells` cells; false if some cell (with margins) holds two thresholds.
bool fill_cells(const std::vector<float>& thresholds, double range, CodeSearchGrid& grid) {
  grid.low = static_cast<float>(-range);
  grid.inverse_cell_width = static_cast<float>(grid.cells / (2.0 * range));
  // The cells as the float arithmetic sees them: edge i = low + i / inverse_cell_width. The cell
  // index of z is computed within ~1e-3 cell of the exact (z - low) * inverse_cell_width (two
  // float roundings of a value below 2^16), far inside the margin.
  const double low = grid.low, cell_width = 1.0 / static_cast<double>(grid.inverse_cell_width);
  const double margin = cell_width / 64;
  grid.cell_entries.resize(static_cast<size_t>(grid.cells));
  for (int32_t cell = 0; cell < grid.cells; ++cell) {
    const double lower_edge = low + cell * cell_width;
    const double upper_edge = cell + 1 == grid.cells ? std::numeric_limits<double>::infinity()
                                                     : lower_edge + cell_width + margin;
    // Cell 0 also receives every z below the grid, and the last cell every z above it.
    const int32_t first = cell == 0 ? 0 : count_below(thresholds, lower_edge - margin);
    if (count_below(thresholds, upper_edge) - first > 1) return false;
    const float next = static_cast<size_t>(first) < thresholds.size() ? thresholds[static_cast<size_t>(first)]
                                                                      : std::numeric_limits<float>::infinity();
    grid.cell_entries[static_cast<size_t>(cell)] = code_search_entry(first, next);
  }
  return true;
}

}  // namespace

CodeSearchGrid make_code_search_grid(const Codebook& codebook) {
  const std::vector<float>& thresholds = codebook.boundaries;
  check(codebook.centroids.size() == thresholds.size() + 1 && !thresholds.empty(),
        "internal: codebook needs 2^bits centroids and 2^bits - 1 thresholds");
  double range = 0;
  for (float threshold : thresholds) range = std::max(range, std::abs(static_cast<double>(threshold)));
  range = range * 1.01 + 1e-3;  // every threshold lies inside the grid, away from its ends
  // The smallest grid with at most one threshold per cell; about 4 cells per smallest gap.
  CodeSearchGrid grid;
  for (grid.cells = 16; grid.cells <= (1 << 16); grid.cells *= 2) {
    if (fill_cells(thresholds, range, grid)) return grid;
  }
  fail("internal: codebook thresholds too close for a code search grid");
}

}  // namespace hlwq
