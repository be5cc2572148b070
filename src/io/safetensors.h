// safetensors files: strict header parsing, memory-mapped reading, and streaming writing.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data area; offsets are relative to the data area's start.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <memory>
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
  std::vector<int64_t> shape;  // empty for a scalar
  uint64_t data_begin = 0;     // relative to the data area
  uint64_t data_end = 0;

  uint64_t element_count() const;
  uint64_t byte_size() const { return data_end - data_begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by data_begin
  std::map<std::string, std::string> metadata;
  uint64_t data_area_begin = 0;  // 8 + header length
};

// Validates everything: header length within the file and at most 100,000,000 bytes, valid
// UTF-8 JSON object (trailing spaces allowed: the reference writer pads to 8 bytes), no
// duplicate names, every entry but "__metadata__" an object with exactly dtype (one of DType),
// shape (at most 8 non-negative integers) and data_offsets ([begin, end], begin <= end), byte
// size = elements x dtype size without overflow, "__metadata__" an object of strings.
// Like the reference Rust crate (which raises InvalidOffset / MetadataIncompleteBuffer), the
// tensors sorted by offset must tile the data area exactly: no overlap, no hole, and no bytes
// after the last tensor. Throws hlwq::Error("<problem>, <file_name>") on any violation.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_bytes,
                                           std::string_view file_name);

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  // The bytes of a tensor of this file (throws if `tensor` does not fit in it). Aligned to
  // 8 bytes in files our writer and the reference writer produce, but not in every file:
  // copy or use memcpy rather than casting the pointer.
  std::span<const std::byte> data(const TensorInfo& tensor) const;
  const MappedFile& file() const { return file_; }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in header_.tensors
};

struct TensorDeclaration {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t byte_size() const;  // throws hlwq::Error for negative dimensions or overflow
};

// Writes one safetensors file in a single pass: the header is written first from the
// declarations (offsets in declaration order, JSON padded with spaces to a multiple of 8 bytes
// like the reference writer, so the data area starts 8-byte aligned; a tensor is aligned when
// the sizes declared before it are multiples of 8), then each tensor's bytes must be
// passed to write() in declaration order. Memory use is the header only. Destroying a writer
// before close() leaves a truncated file that the reader rejects; write into a
// StagedDirectory so such a file never reaches the user.
class SafetensorsWriter {
 public:
  // Throws for names repeated or "__metadata__", invalid shapes, or an uncreatable file.
  SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorDeclaration> tensors,
                    const std::map<std::string, std::string>& metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  // Throws if `name` is not the next declared tensor or `bytes` has the wrong size.
  void write(std::string_view name, std::span<const std::byte> bytes);
  void close();  // throws if a declared tensor was not written or the disk is full

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A name for error messages: quoted, control and non-ASCII bytes escaped, long names
// shortened, so that a hostile tensor name cannot break the one-line message format.
// Formatting happens only when streamed (by concat/fail), so check(ok, ..., quoted_name(x))
// costs nothing when the check passes; the viewed text must outlive the streaming.
struct QuotedName {
  std::string_view name;
};
inline QuotedName quoted_name(std::string_view name) { return {name}; }
std::ostream& operator<<(std::ostream& stream, QuotedName quoted);

}  // namespace hlwq
