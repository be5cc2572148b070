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
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

std::string gguf_type_name(uint32_t type);        // "Q4_K", or "type 99" when unknown
bool gguf_type_is_known(uint32_t type);            // listed above: its block size is known
bool gguf_type_is_supported(GgufTensorType type);  // dequantize_gguf handles it
// Elements per block and bytes per block. Known for every type listed above (also those that
// cannot be dequantized, so their bytes can still be located); throws for unknown types.
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
  // Unsigned GGUF integers become JSON unsigned numbers, signed ones signed numbers, F32/F64
  // doubles. Strings (keys and values) hold the file's bytes exactly: tokenizer pieces may be
  // any bytes, so they need not be valid UTF-8. nlohmann's dump() throws on invalid UTF-8;
  // print metadata with dump_gguf_metadata, read raw bytes with get_ref<const std::string&>().
  nlohmann::json metadata = nlohmann::json::object();
  std::vector<GgufTensorInfo> tensors;  // file order
  uint64_t alignment = 32;
  uint64_t data_area_begin = 0;
};

// Validates: magic, version 2 or 3, counts and string/array lengths within the file (checked
// before anything is allocated), known metadata value types, nested arrays at most 16 deep, no
// duplicate keys, general.alignment a uint32 power of two, tensor names non-empty UTF-8 and
// unique, 0..4 dims each > 0 with the element count below 2^63, the row length (dims[0]) a
// multiple of the type's block, offsets aligned and inside the file, no overlapping tensors.
// Unknown tensor *types* are kept (byte_size = 0) so that the metadata can still be read;
// reading such a tensor fails with its type named. Throws hlwq::Error("<what>, <file_name>").
GgufContents parse_gguf(std::span<const std::byte> file_bytes, std::string_view file_name);

// The bytes of one tensor inside the whole file's bytes. Throws naming the tensor (and type)
// when the type's size is unknown, or when the tensor does not lie inside file_bytes.
std::span<const std::byte> gguf_tensor_data(const GgufContents& contents, const GgufTensorInfo& tensor,
                                            std::span<const std::byte> file_bytes,
                                            std::string_view file_name);

// Dequantizes one tensor; throws naming the tensor, its type and the file when the type is
// not supported.
std::vector<float> dequantize_gguf_tensor(const GgufContents& contents, const GgufTensorInfo& tensor,
                                          std::span<const std::byte> file_bytes,
                                          std::string_view file_name);

// Metadata (or any part of it) as JSON text; bytes that are not valid UTF-8 become U+FFFD, so
// this never throws (plain dump() would). indent < 0: one line.
std::string dump_gguf_metadata(const nlohmann::json& value, int indent = -1);

class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path);
  const GgufContents& contents() const { return contents_; }
  const nlohmann::json& metadata() const { return contents_.metadata; }
  const std::vector<GgufTensorInfo>& tensors() const { return contents_.tensors; }
  const GgufTensorInfo* find(std::string_view name) const;  // nullptr when absent
  std::span<const std::byte> data(const GgufTensorInfo& tensor) const;
  // Dequantizes a whole tensor to float (element_count values, GGUF element order).
  std::vector<float> dequantize(const GgufTensorInfo& tensor) const;
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  MappedFile file_;
  GgufContents contents_;
  std::vector<size_t> by_name_;  // indices into contents_.tensors sorted by name, for find()
};

// Dequantizes `destination.size()` elements (a multiple of the block size) of one type from
// exactly the bytes they occupy. Results equal gguf-py's gguf.quants.dequantize bit for bit
// (same float32 operations in the same order, no fused multiply-add). Throws for unsupported
// types and mismatched sizes.
void dequantize_gguf(GgufTensorType type, std::span<const std::byte> source, std::span<float> destination);

}  // namespace hlwq
