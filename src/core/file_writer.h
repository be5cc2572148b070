// Sequential file output that checks every write, so a full disk is an error naming the file
// instead of a silently truncated model.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string_view>

namespace hlwq {

class FileWriter {
 public:
  explicit FileWriter(const std::filesystem::path& path);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  uint64_t bytes_written() const { return bytes_written_; }
  // Flushes and closes; throws if any byte could not be stored.
  void close();

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  uint64_t bytes_written_ = 0;
};

// Writes a whole small file (config.json, an index) with the same checks.
void write_text_file(const std::filesystem::path& path, std::string_view text);

}  // namespace hlwq
