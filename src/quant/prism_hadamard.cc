#include "quant/prism_hadamard.h"

#include "core/error.h"
#include "quant/hadamard.h"

namespace hlwq {

bool prism_block_allowed(int block, int64_t width) {
  for (int allowed : kPrismBlocks) {
    if (block == allowed) return width > 0 && width % block == 0;
  }
  return false;
}

int prism_default_block(int64_t width) {
  for (int block : kPrismBlocks) {
    if (prism_block_allowed(block, width)) return block;
  }
  return 0;
}

namespace {

void check_rotation(std::span<float> values, int64_t rows, int64_t columns, int block, std::span<const float> signs) {
  check(rows >= 0 && columns > 0 && values.size() == static_cast<size_t>(rows * columns),
        "prism rotation: ", values.size(), " values for ", rows, " x ", columns);
  check(block == 0 || prism_block_allowed(block, columns), "prism rotation: block ", block, " does not fit width ",
        columns);
  check(block == 0 || signs.size() == static_cast<size_t>(columns), "prism rotation: ", signs.size(),
        " signs for width ", columns);
}

}  // namespace

void prism_rotate_rows(std::span<float> values, int64_t rows, int64_t columns, int block,
                       std::span<const float> signs) {
  check_rotation(values, rows, columns, block, signs);
  if (block == 0) return;
  for (int64_t row = 0; row < rows; ++row) {
    std::span<float> line = values.subspan(row * columns, columns);
    for (int64_t column = 0; column < columns; ++column) line[column] *= signs[column];
    for (int64_t start = 0; start < columns; start += block) walsh_hadamard_transform(line.subspan(start, block));
  }
}

void prism_unrotate_rows(std::span<float> values, int64_t rows, int64_t columns, int block,
                         std::span<const float> signs) {
  check_rotation(values, rows, columns, block, signs);
  if (block == 0) return;
  for (int64_t row = 0; row < rows; ++row) {
    std::span<float> line = values.subspan(row * columns, columns);
    for (int64_t start = 0; start < columns; start += block) walsh_hadamard_transform(line.subspan(start, block));
    for (int64_t column = 0; column < columns; ++column) line[column] *= signs[column];
  }
}

}  // namespace hlwq
