#include "ops/kv_cache.h"

#include "core/error.h"

namespace hlwq {

KvCache::KvCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t context_length, DType dtype)
    : layers_(layers), row_width_(kv_heads * head_dim), context_length_(context_length), dtype_(dtype) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, "KV cache dtype ", dtype_name(dtype),
        " is not F32, F16 or BF16");
  check(layers > 0 && kv_heads > 0 && head_dim > 0 && context_length > 0, "KV cache sizes must be positive, got ",
        layers, " layers, ", kv_heads, " kv heads, head_dim ", head_dim, ", context ", context_length);
  const size_t bytes = static_cast<size_t>(layers * context_length * row_width_) * dtype_size(dtype);
  keys_.resize(bytes);
  values_.resize(bytes);
}

size_t KvCache::row_bytes() const { return static_cast<size_t>(row_width_) * dtype_size(dtype_); }

size_t KvCache::row_offset(int64_t layer, int64_t position) const {
  check(layer >= 0 && layer < layers_ && position >= 0 && position < context_length_, "KV cache position ", position,
        " of layer ", layer, " is outside the context length ", context_length_);
  return static_cast<size_t>(layer * context_length_ + position) * row_bytes();
}

void KvCache::store(int64_t layer, int64_t position, std::span<const float> keys, std::span<const float> values) {
  const size_t offset = row_offset(layer, position);
  convert_from_float(keys.first(row_width_), dtype_, std::span(keys_).subspan(offset, row_bytes()));
  convert_from_float(values.first(row_width_), dtype_, std::span(values_).subspan(offset, row_bytes()));
}

void KvCache::read_key(int64_t layer, int64_t position, int64_t offset, std::span<float> out) const {
  const size_t element = dtype_size(dtype_);
  convert_to_float(dtype_,
                   std::span(keys_).subspan(row_offset(layer, position) + offset * element, out.size() * element), out);
}

void KvCache::read_value(int64_t layer, int64_t position, int64_t offset, std::span<float> out) const {
  const size_t element = dtype_size(dtype_);
  convert_to_float(
      dtype_, std::span(values_).subspan(row_offset(layer, position) + offset * element, out.size() * element), out);
}

std::span<const std::byte> KvCache::layer_keys(int64_t layer) const {
  return std::span(keys_).subspan(row_offset(layer, 0), static_cast<size_t>(context_length_) * row_bytes());
}

std::span<const std::byte> KvCache::layer_values(int64_t layer) const {
  return std::span(values_).subspan(row_offset(layer, 0), static_cast<size_t>(context_length_) * row_bytes());
}

}  // namespace hlwq
