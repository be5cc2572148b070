// The shape of one linear product as the per-target kernels see it (target-independent, so the
// dispatched entry points of every SIMD target share it).
#pragma once

#include <algorithm>
#include <cstddef>

namespace hlwq {

// The activations (batch rows, x_stride floats apart, `length` values used from each), the outputs
// (y[b * rows + r]) and how many weight rows are made ready at once.
struct RowProductShape {
  const float* x = nullptr;
  size_t batch = 0;
  size_t x_stride = 0;
  size_t length = 0;  // values per weight row and per activation row in the product
  float* y = nullptr;
  size_t rows = 0;
  size_t chunk_rows = 1;  // weight rows held at once (decoded into scratch), chunk_rows_for below
};

inline constexpr size_t kMaxChunkRows = 32;

// Weight rows made ready at once: one for small batches (each row is read once and used for the
// whole batch); kMaxChunkRows for larger ones, the panel of the register-blocked product (two
// vectors of rows; 32 with AVX-512).
inline size_t chunk_rows_for(size_t batch, size_t /*length*/) { return batch <= 4 ? 1 : kMaxChunkRows; }

}  // namespace hlwq
