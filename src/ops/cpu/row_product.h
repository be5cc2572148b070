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
  size_t chunk_rows = 1;  // weight rows held at once (decoded into scratch): each activation tile is
                          // read once per chunk, so a large batch streams x rows / chunk_rows times
};

inline constexpr size_t kMaxChunkRows = 32;

// Decoded weight rows that fit a 512 KiB scratch (within L2) once the batch is large enough to reuse
// them: the whole activation batch is streamed once per chunk, so larger chunks cut that traffic.
inline size_t chunk_rows_for(size_t batch, size_t length) {
  if (batch <= 4) return 1;
  return std::clamp<size_t>((size_t{512} << 10) / (length * sizeof(float)), 1, kMaxChunkRows);
}

}  // namespace hlwq
