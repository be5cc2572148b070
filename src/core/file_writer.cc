#include "core/file_writer.h"

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hlwq {

FileWriter::FileWriter(const std::filesystem::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr) fail("cannot create file: ", std::strerror(errno), ", ", path.string());
}

FileWriter::~FileWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void FileWriter::write(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    fail("write failed (disk full?): ", std::strerror(errno), ", ", path_.string());
  bytes_written_ += bytes.size();
}

void FileWriter::write(std::string_view text) {
  write(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

void FileWriter::close() {
  if (file_ == nullptr) return;
  const bool flushed = std::fflush(file_) == 0;
  const int flush_error = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed)
    fail("write failed (disk full?): ", std::strerror(flush_error), ", ", path_.string());
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  FileWriter writer(path);
  writer.write(text);
  writer.close();
}

}  // namespace hlwq
