#include "quant/code_search_grid.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace hlwq {
namespace {

TEST(CodeSearchGrid, AgreesWithBinarySearchEverywhere) {
  std::mt19937 generator(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (CodebookKind kind : {CodebookKind::converged, CodebookKind::polarquant_compat, CodebookKind::uniform}) {
    for (int bits = kind == CodebookKind::uniform ? 2 : 1; bits <= 8; ++bits) {
      const Codebook codebook = lloyd_max_codebook(bits, kind);
      const CodeSearchGrid grid = make_code_search_grid(codebook);
      EXPECT_LE(grid.cells, 4096) << bits;  // fits in L1 (8 bytes per cell)
      for (int trial = 0; trial < 100000; ++trial) {
        const float z = normal(generator);
        ASSERT_EQ(grid_nearest_code(grid, z), nearest_code(codebook, z)) << bits << " bits, z " << z;
      }
      // The hardest points: every threshold and its float neighbours, the grid cell edges, far out.
      for (float threshold : codebook.boundaries) {
        for (float z : {threshold, std::nextafter(threshold, -INFINITY), std::nextafter(threshold, INFINITY)}) {
          ASSERT_EQ(grid_nearest_code(grid, z), nearest_code(codebook, z)) << bits << " bits, z " << z;
        }
      }
      for (int32_t cell = 0; cell <= grid.cells; ++cell) {
        const float edge = grid.low + static_cast<float>(cell) / grid.inverse_cell_width;
        for (float z : {edge, std::nextafter(edge, -INFINITY), std::nextafter(edge, INFINITY)}) {
          ASSERT_EQ(grid_nearest_code(grid, z), nearest_code(codebook, z)) << bits << " bits, z " << z;
        }
      }
      for (float z : {-1e30f, -40.0f, 0.0f, -0.0f, 40.0f, 1e30f, std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
        EXPECT_EQ(grid_nearest_code(grid, z), nearest_code(codebook, z)) << bits << " bits, z " << z;
      }
    }
  }
}

}  // namespace
}  // namespace hlwq
