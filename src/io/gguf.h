// GGUF files (versions 2 and 3): metadata, tensor directory, and dequantization of the
// tensor types hlwq imports. Layout reference: ggml's docs/gguf.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace hlwq {

// ggml_type numbers as stored in the file.
enum class GgufTensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
};

std::string gguf_type_name(uint32_t type);        // "Q4_K", or "type 99" when unknown
bool gguf_type_is_supported(GgufTensorType type);  // dequantize_gguf handles it
// Elements per block and bytes per block; throws for unknown or unsupported types.
uint64_t gguf_block_elements(GgufTensorType type);
uint64_t gguf_block_bytes(GgufTensorType type);

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the fastest-varying (row length)
  uint32_t type = 0;           // a GgufTensorType value (may be unknown to hlwq)
  uint64_t offset = 0;         // relative to the tensor data area
  uint64_t byte_size = 0;      // 0 when the type is unknown

  uint64_t element_count() const;
  // Row-major shape as PyTorch / safetensors write it: dims reversed.
  std::vector<int64_t> torch_shape() const;
};

struct GgufContents {
  uint32_t version = 0;
  // Metadata as JSON: numbers, bools, strings, and arrays of them (nested arrays allowed).
  nlohmann::json metadata = nlohmann::json::object();
  std::vector<GgufTensorInfo> tensors;  // file order
  uint64_t alignment = 32;
  uint64_t data_area_begin = 0;
};

// Validates: magic, version 2 or 3, counts and string/array lengths within the file and sane
// limits, known metadata value types, tensor dims > 0 without overflow, offsets aligned and
// inside the file, no overlapping tensors. Unknown tensor *types* are kept (byte_size = 0) so
// that the metadata can still be read; reading such a tensor fails with its type named.
GgufContents parse_gguf(std::span<const std::byte> file_bytes, std::string_view file_name);

class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path);
  const GgufContents& contents() const { return contents_; }
  const nlohmann::json& metadata() const { return contents_.metadata; }
  const std::vector<GgufTensorInfo>& tensors() const { return contents_.tensors; }
  const GgufTensorInfo* find(std::string_view name) const;
  std::span<const std::byte> data(const GgufTensorInfo& tensor) const;
  // Dequantizes a whole tensor to float (element_count values, GGUF element order).
  std::vector<float> dequantize(const GgufTensorInfo& tensor) const;
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  MappedFile file_;
  GgufContents contents_;
};

// Dequantizes `destination.size()` elements (a multiple of the block size) of one type.
void dequantize_gguf(GgufTensorType type, std::span<const std::byte> source, std::span<float> destination);

}  // namespace hlwq
