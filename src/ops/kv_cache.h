// Keys and values of every past position, per layer, stored as F32, F16 or BF16 (F16 halves the
// memory of F32; BF16 trades mantissa for range) up to a fixed context length.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"

namespace hlwq {

class KvCache {
 public:
  // Throws hlwq::Error for a dtype other than F32, F16 or BF16 or a non-positive size.
  KvCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t context_length, DType dtype);

  int64_t context_length() const { return context_length_; }
  int64_t row_width() const { return row_width_; }  // kv_heads * head_dim
  DType dtype() const { return dtype_; }

  // Stores one position's keys and values (row_width() floats each), rounded to dtype().
  void store(int64_t layer, int64_t position, std::span<const float> keys, std::span<const float> values);
  // Reads back `count` values of a stored row starting at `offset` (e.g. one kv head).
  void read_key(int64_t layer, int64_t position, int64_t offset, std::span<float> out) const;
  void read_value(int64_t layer, int64_t position, int64_t offset, std::span<float> out) const;
  // All context_length() rows of one layer as stored (row_width() elements of dtype() each, row
  // after row), for kernels that widen them in registers instead of copying.
  std::span<const std::byte> layer_keys(int64_t layer) const;
  std::span<const std::byte> layer_values(int64_t layer) const;

 private:
  // Byte offset of a stored row; throws when the position is outside the context.
  size_t row_offset(int64_t layer, int64_t position) const;
  size_t row_bytes() const;

  int64_t layers_, row_width_, context_length_;
  DType dtype_;
  std::vector<std::byte> keys_, values_;
};

}  // namespace hlwq
