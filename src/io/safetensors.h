// safetensors files: strict header parsing, memory-mapped reading, and streaming writing.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data area; offsets are relative to the data area's start.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace hlwq {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;  // relative to the data area
  uint64_t data_end = 0;

  uint64_t element_count() const;
  uint64_t byte_size() const { return data_end - data_begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by data_begin
  std::map<std::string, std::string> metadata;
  uint64_t data_area_begin = 0;  // 8 + header length
};

// Validates everything: header length within the file and below a size limit (100 MB), valid
// JSON object, known dtypes, non-negative shapes without overflow, byte size = elements x dtype
// size, offsets inside the data area, no overlaps, metadata values are strings. Throws
// hlwq::Error("<problem>, <file_name>") on any violation.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_bytes,
                                           std::string_view file_name);

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  std::span<const std::byte> data(const TensorInfo& tensor) const;
  const MappedFile& file() const { return file_; }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

struct TensorDeclaration {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t byte_size() const;
};

// Writes one safetensors file in a single pass: the header is written first from the
// declarations, then each tensor's bytes must be passed to write() in declaration order.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorDeclaration> tensors,
                    const std::map<std::string, std::string>& metadata);
  ~SafetensorsWriter();
  void write(std::string_view name, std::span<const std::byte> bytes);
  void close();  // throws if a declared tensor was not written
 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace hlwq
