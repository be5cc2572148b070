// One query head attending over a run of cached key/value rows: scores q.k *
// scale, softmax, and the score-weighted sum of the values. The cache stores
// rows in F32, F16 or BF16; the fast kernel widens them in registers (one pass
// per head, no float copy of the cache), the reference in double.
#pragma once

#include <cstddef>
#include <span>

#include "core/dtype.h"

namespace hlwq {

struct AttentionHead {
  const float* query = nullptr;       // head_dim floats
  const std::byte* keys = nullptr;    // row p at keys + p * row_stride elements of dtype
  const std::byte* values = nullptr;  // same layout as keys
  DType dtype = DType::F32;           // F32, F16 or BF16
  size_t row_stride = 0;              // elements from one position's row to the next
  size_t positions = 0;               // rows 0..positions-1 are attended (at least 1)
  size_t head_dim = 0;
  float scale = 1.0f;  // usually 1 / sqrt(head_dim)
};

// Plain loops: every sum in double, exp from <cmath>. out: head_dim floats.
void attention_head_reference(const AttentionHead& head, std::span<float> out);

// SIMD (Highway runtime dispatch). scratch: at least head.positions floats (the
// scores). Sums are float: |out - reference| stays within a few float roundings
// of max |value| (see the tests).
void attention_head(const AttentionHead& head, std::span<float> scratch, std::span<float> out);

}  // namespace hlwq
