// A read-only memory map of a whole file. Models are read through maps so that a model larger
// than RAM can be streamed tensor by tensor; the OS pages weights in and out as needed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace hlwq {

class MappedFile {
 public:
  // Throws hlwq::Error naming the file when it cannot be opened or mapped.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

  // Tells the OS that a range will not be read again soon (keeps peak memory near one tensor).
  void release(std::span<const std::byte> range) const;

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hlwq
