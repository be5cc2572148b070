// The signed blockwise Walsh-Hadamard rotation of mlx-lm's "prism Hadamard" packs
// (mlx_lm/models/prism_hadamard_qwen35.py, hadamard_rotate): x -> H_B (signs * x) per block of B
// input columns, H_B the orthonormal Sylvester Hadamard matrix. A packed weight is
// W' = W diag(signs) H_B^T, so that W' (R x) = W x for the rotated activation R x; row by row that is
// the same forward rotation applied to each weight row (H_B is symmetric). docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <span>

namespace hlwq {

// The blocks the format allows: 0 (no rotation) or a power of two from 512 to 8192.
inline constexpr int kPrismBlocks[] = {8192, 4096, 2048, 1024, 512};

// Whether `block` is 512..8192, a power of two, and divides `width`.
bool prism_block_allowed(int block, int64_t width);

// The largest allowed block dividing `width`, or 0 when none does.
int prism_default_block(int64_t width);

// Forward rotation of each row of a row-major [rows, columns] matrix in place: multiply by signs,
// then the orthonormal WHT over each block. block 0: unchanged. signs.size() == columns.
void prism_rotate_rows(std::span<float> values, int64_t rows, int64_t columns, int block,
                       std::span<const float> signs);

// The inverse: the orthonormal WHT over each block, then multiply by signs.
void prism_unrotate_rows(std::span<float> values, int64_t rows, int64_t columns, int block,
                         std::span<const float> signs);

}  // namespace hlwq
